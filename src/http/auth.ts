// HTTP Basic auth, compared in constant time. A wrong login is answered and logged without
// the credentials it carried.
import { crypto } from '../util/builtins.ts'

const digest = (value: string | Buffer) => crypto().createHash('sha256').update(value).digest()

/**
 * Whether two buffers of the same size hold the same bytes, in a time that depends on their size
 * only: every byte pair is looked at, and the differences are OR-ed together without a branch
 * (what crypto.timingSafeEqual does in C). Here so that the check on every poll does not need
 * node:crypto, which an agent loads only when it first needs it (src/util/builtins.ts).
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) throw new RangeError('sameBytes compares buffers of the same size')
  let difference = 0
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number)
  return difference === 0
}

/**
 * The usual header, byte for byte, is compared without hashing: it is copied into a buffer of a
 * fixed size, zero-padded, and compared with the expected header padded the same way. The time
 * taken depends on the size (the expected header's length rounded up to 256 bytes, so the
 * credentials' length within it stays hidden) and on the length of the header sent, never on
 * where the bytes differ. A SHA-256 of the header took ~1.3 µs of the ~20 µs a poll costs, and
 * an object and a buffer of garbage; this takes well under a microsecond and none.
 */
function exactHeaderChecker(expected: string): (header: string) => boolean {
  const length = Buffer.byteLength(expected)
  const size = 256 * Math.ceil((length + 1) / 256)
  const padded = Buffer.alloc(size)
  padded.write(expected)
  const scratch = Buffer.alloc(size) // reused: the check is synchronous
  return (header) => {
    const written = scratch.write(header, 0, 'utf8') // at most `size` bytes
    scratch.fill(0, written)
    const same = sameBytes(scratch, padded)
    const sameLength = Buffer.byteLength(header) === length
    return same && sameLength
  }
}

export function basicAuthChecker(username: string, password: string): (header: string | undefined) => boolean {
  // Digests for the other spellings, made when one first comes (they need node:crypto).
  let expected: { user: Buffer; password: Buffer } | undefined
  const exactHeader = exactHeaderChecker(`Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`)

  return (header) => {
    if (header === undefined) return false
    if (exactHeader(header)) return true
    // Other spellings of the same credentials (scheme case, no padding, spaces). Only well-formed
    // base64: Node's decoder stops at the first '=' and drops a lone last character, so
    // `<right token>==AAAA` or `<right token>A` would pass otherwise.
    const match = /^\s*basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)
    const token = match?.[1]
    if (!token || token.length % 4 === 1 || (token.endsWith('=') && token.length % 4 !== 0)) return false
    const decoded = Buffer.from(token, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return false
    // Both comparisons always run: the time taken does not tell which part was wrong.
    expected ??= { user: digest(username), password: digest(password) }
    const userOk = sameBytes(digest(decoded.slice(0, colon)), expected.user)
    const passwordOk = sameBytes(digest(decoded.slice(colon + 1)), expected.password)
    return userOk && passwordOk
  }
}
