// JSON Schema as plain data, and the few helpers that build it. The route table's OpenAPI
// description (src/http/routes.ts) and the trigger body checks (src/http/schema-check.ts) read
// the same objects. No schema library: these are a few object literals, and TypeBox, which
// built them, was ~10 MB resident and 683 modules.

/**
 * Marks a property an object may leave out. A symbol: JSON.stringify and the validators skip it,
 * so it never reaches the OpenAPI document.
 */
const OPTIONAL: unique symbol = Symbol('optional')

export interface JsonSchema {
  type?: string | string[]
  description?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  anyOf?: JsonSchema[]
  const?: unknown
  enum?: unknown[]
  pattern?: string
  minimum?: number
  maximum?: number
  default?: unknown
  additionalProperties?: boolean
  [OPTIONAL]?: true
}

type Options = Pick<JsonSchema, 'description' | 'pattern' | 'minimum' | 'maximum' | 'default' | 'additionalProperties'>

export const optional = (schema: JsonSchema): JsonSchema => ({ ...schema, [OPTIONAL]: true })

/** An object; every property not wrapped in optional() is required. */
export function object(properties: Record<string, JsonSchema>, options: Options = {}): JsonSchema {
  const required = Object.keys(properties).filter((name) => properties[name]?.[OPTIONAL] !== true)
  return { type: 'object', ...(required.length > 0 ? { required } : {}), properties, ...options }
}

export const string = (options: Options | string = {}): JsonSchema => ({ type: 'string', ...described(options) })
export const integer = (options: Options | string = {}): JsonSchema => ({ type: 'integer', ...described(options) })
export const boolean = (options: Options | string = {}): JsonSchema => ({ type: 'boolean', ...described(options) })
export const nullType = (): JsonSchema => ({ type: 'null' })
export const literal = (value: string, options: Options | string = {}): JsonSchema => ({
  type: 'string',
  const: value,
  ...described(options),
})
export const array = (items: JsonSchema, options: Options | string = {}): JsonSchema => ({ type: 'array', items, ...described(options) })
export const union = (members: JsonSchema[], options: Options | string = {}): JsonSchema => ({ anyOf: members, ...described(options) })
/** Any JSON value. */
export const unknown = (options: Options | string = {}): JsonSchema => ({ ...described(options) })

const described = (options: Options | string): Options => (typeof options === 'string' ? { description: options } : options)
