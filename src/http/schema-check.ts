// Checks a JSON value against the plain schemas of src/http/schemas.ts. Only what those schemas
// use: `type` (string, boolean, null, object, array, integer, number), `properties`, `required`
// and `anyOf`; a schema without `type` or `anyOf` takes any value. The failures come in the
// order and shape TypeBox's validator reported them (src/http/trigger.ts turns them into the
// messages the API answers), all of them: a validator that stops early (TypeBox stopped at 8)
// lets a bad field it did not report reach the checks after it.
//
// Written for the agent instead of a validator library: the trigger bodies need these few rules,
// and TypeBox's compiler was ~10 MB resident and 683 modules.
import type { JsonSchema } from './json-schema.ts'

/** One failed rule: `instancePath` is a JSON pointer (`/destination/bucket`). */
export interface SchemaError {
  keyword: 'type' | 'anyOf' | 'required'
  instancePath: string
  params: { type?: string; requiredProperties?: string[] }
}

/** Every rule `value` breaks; none when it fits. */
export function schemaErrors(value: unknown, schema: JsonSchema): SchemaError[] {
  const errors: SchemaError[] = []
  check(value, schema, '', errors)
  return errors
}

function check(value: unknown, schema: JsonSchema, path: string, errors: SchemaError[]): boolean {
  if (schema.anyOf) {
    // Every member's failures, then the anyOf's own; nothing when one member fits.
    const failures: SchemaError[] = []
    for (const member of schema.anyOf) if (check(value, member, path, failures)) return true
    errors.push(...failures, { keyword: 'anyOf', instancePath: path, params: {} })
    return false
  }
  const type = typeof schema.type === 'string' ? schema.type : undefined
  if (type === undefined) return true
  if (!hasType(value, type)) {
    errors.push({ keyword: 'type', instancePath: path, params: { type } })
    return false
  }
  if (type !== 'object') return true
  const object = value as Record<string, unknown>
  let ok = true
  // undefined is no value (JSON has none; callers in code may pass one): the key is missing.
  const missing = (schema.required ?? []).filter((name) => !Object.hasOwn(object, name) || object[name] === undefined)
  if (missing.length > 0) {
    errors.push({ keyword: 'required', instancePath: path, params: { requiredProperties: missing } })
    ok = false
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    if (!Object.hasOwn(object, name) || object[name] === undefined) continue
    if (!check(object[name], property, `${path}/${name}`, errors)) ok = false
  }
  return ok
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value)
    case 'array':
      return Array.isArray(value)
    case 'null':
      return value === null
    case 'integer':
      return Number.isInteger(value)
    case 'number':
      return typeof value === 'number' && Number.isFinite(value)
    default:
      return typeof value === type
  }
}
