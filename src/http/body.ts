// Request bodies: JSON whatever the Content-Type, and what a route gets when that fails.

/** A request body that was not valid JSON; routes answer it in their own error shape. */
export class InvalidJson {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

/**
 * Deeper nesting than any trigger body needs (a few levels). JSON.parse copes with any depth, but
 * recursive code after it (JSON.stringify, comparisons) would overflow the stack on a body of a
 * million brackets, so such a body is refused as invalid before any route sees it.
 */
export const MAX_BODY_DEPTH = 64

/** JSON is UTF-8 (RFC 8259); a byte sequence that is not is refused rather than patched up. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The parsed body, or InvalidJson. */
export function parseJsonBody(body: Buffer | string): unknown {
  let text: string
  try {
    text = typeof body === 'string' ? body : UTF8.decode(body)
  } catch {
    return new InvalidJson('it is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    return new InvalidJson(withoutSource((error as Error).message))
  }
  if (nestedDeeperThan(value, MAX_BODY_DEPTH)) return new InvalidJson(`it is nested deeper than ${MAX_BODY_DEPTH} levels`)
  return value
}

/**
 * V8 quotes the body around the error in some messages (`Unexpected token 'x', "…","b":tru}" is
 * not valid JSON`): a password next to a typo would come back in the 400, which the manager
 * stores whole. Such a message is cut before its first quote (the token is the body's too); the
 * others name only positions and V8's own punctuation, and are kept.
 */
function withoutSource(message: string): string {
  if (!message.includes('"')) return message
  return message.slice(0, message.search(/['"]/)).replace(/[\s,]+$/, '')
}

/** Iterative (a recursive walk would itself overflow on the bodies this is meant to catch). */
function nestedDeeperThan(root: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[root, 0]]
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number]
    if (typeof value !== 'object' || value === null) continue
    if (depth >= max) return true
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}
