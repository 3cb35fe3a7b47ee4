/*
 * malloc_trim(0) for the agent, as a Node-API addon (libexec/malloc-trim.node, built by
 * tools/build-native.sh). glibc's free() hands memory back to the kernel only from the top of a
 * heap; what a busy spell freed between blocks still in use stays resident for good, and Node
 * never calls malloc_trim. src/util/idle-memory.ts calls it after its collections.
 */
#include <malloc.h>
#include <node_api.h>

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value released;
  napi_get_boolean(env, malloc_trim(0) == 1, &released);
  return released;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}
