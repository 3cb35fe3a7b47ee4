// Which request parameter names may reach a script's environment (SPEC §3, §5): an allowlist.
// Programs read hundreds of upper-case variables (TAR_OPTIONS ran a command, OPENSSL_CONF loaded
// a library), so a list of the dangerous ones can never be complete. POSIX.1 §8.1 leaves
// lower-case names to applications; anything else the operator lists by name.
import { reservedNameReason } from './environment.ts'

/** The names a request may use without being listed. */
export const LOWER_CASE_NAME = /^[a-z_][a-z0-9_]*$/
/** A parameter name's limit in UTF-8 bytes. */
export const PARAMETER_NAME_MAX_BYTES = 128

export interface NameRule {
  /** script_parameter_names: names accepted exactly as written. */
  listed: readonly string[]
  /** script_env_passthrough: the agent's own variables, never overwritten by a request. */
  passthrough: readonly string[]
}

/**
 * Why `name` may not be a parameter, as the end of a sentence that starts with the parameter's
 * field, or undefined when it may. Reserved names are refused even when listed.
 */
export function parameterNameProblem(name: string, rule: NameRule): string | undefined {
  if (Buffer.byteLength(name, 'utf8') > PARAMETER_NAME_MAX_BYTES) {
    return `is longer than ${PARAMETER_NAME_MAX_BYTES} bytes: a parameter name is at most ${PARAMETER_NAME_MAX_BYTES} bytes in UTF-8, listed in script_parameter_names or not`
  }
  // JavaScript objects carry the request's parameters: this one name would set their prototype
  // instead of a key, and the script would silently never get it.
  if (name === '__proto__') return "cannot be passed to a script (the name is special to the agent's JavaScript objects)"
  const reserved = reservedNameReason(name, rule.passthrough)
  if (reserved) return `is reserved: it ${reserved}, and is refused even when listed in script_parameter_names`
  if (LOWER_CASE_NAME.test(name) || rule.listed.includes(name)) return undefined
  return 'is not an allowed parameter name: use lower-case letters, digits and _ (not starting with a digit), or have the operator list the exact name in script_parameter_names'
}
