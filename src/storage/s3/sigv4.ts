// AWS Signature Version 4 for every S3 request the agent sends (client.ts). Header-based signing
// only, as S3 specifies it: the path is encoded once (not twice, as for other services) and the
// payload hash is a header of its own, computed before the request (a part's by a digest worker
// or as its buffer filled), so no body is hashed on the event loop while it is sent.
import { createHash, createHmac } from 'node:crypto'

/** The SHA-256 of an empty body (a GET's payload hash). */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export interface SigningCredentials {
  accessKeyId: string
  secretAccessKey: string
}

/** RFC 3986 encoding as SigV4 wants it: every byte but A-Z a-z 0-9 - . _ ~ (and `/` in a path). */
export function uriEncode(value: string, keepSlash = false): string {
  const encoded = encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest()
const sha256Hex = (data: string) => createHash('sha256').update(data).digest('hex')

/**
 * The headers to send: `headers` (lower-case names) plus host, x-amz-date, x-amz-content-sha256
 * and authorization, every one of them signed. `url.pathname` must already be encoded with
 * uriEncode (it is signed as it is).
 */
export function signS3Request(
  request: { method: string; url: URL; headers: Record<string, string> },
  credentials: SigningCredentials,
  region: string,
  payloadHash = EMPTY_SHA256,
  now = new Date(),
): Record<string, string> {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const headers: Record<string, string> = {
    ...request.headers,
    host: request.url.host,
    'x-amz-date': amzDate,
    'x-amz-content-sha256': payloadHash,
  }
  headers.authorization = authorization(
    { method: request.method, url: request.url, headers },
    credentials,
    { region, service: 's3', amzDate },
    payloadHash,
  )
  return headers
}

/**
 * SigV4's Authorization header for a request whose headers (lower-case names, x-amz-date among
 * them) are all signed. The path is signed as it is, S3's rule (other services normalise it and
 * encode it twice), so AWS's generic test suite applies to paths without anything to normalise.
 */
export function authorization(
  request: { method: string; url: URL; headers: Record<string, string> },
  credentials: SigningCredentials,
  scope: { region: string; service: string; amzDate: string },
  payloadHash: string,
): string {
  const { headers } = request
  const day = scope.amzDate.slice(0, 8)
  const names = Object.keys(headers).sort()
  const signedHeaders = names.join(';')
  const query = [...request.url.searchParams]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const canonical = [
    request.method,
    request.url.pathname,
    query,
    ...names.map((name) => `${name}:${String(headers[name]).trim().replace(/\s+/g, ' ')}`),
    '',
    signedHeaders,
    payloadHash,
  ].join('\n')
  const credentialScope = `${day}/${scope.region}/${scope.service}/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', scope.amzDate, credentialScope, sha256Hex(canonical)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), scope.region), scope.service), 'aws4_request')
  const signature = createHmac('sha256', key).update(toSign).digest('hex')
  return `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`
}
