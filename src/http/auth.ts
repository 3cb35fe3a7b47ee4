// HTTP Basic auth, compared in constant time. A wrong login is answered and logged without
// the credentials it carried.
import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (value: string | Buffer) => createHash('sha256').update(value).digest()

export function basicAuthChecker(username: string, password: string): (header: string | undefined) => boolean {
  const expectedUser = digest(username)
  const expectedPassword = digest(password)
  // The usual header, byte for byte: one hash and one comparison on the polling hot path.
  const expectedHeader = digest(`Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`)

  return (header) => {
    if (header === undefined) return false
    if (timingSafeEqual(digest(header), expectedHeader)) return true
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
    const userOk = timingSafeEqual(digest(decoded.slice(0, colon)), expectedUser)
    const passwordOk = timingSafeEqual(digest(decoded.slice(colon + 1)), expectedPassword)
    return userOk && passwordOk
  }
}
