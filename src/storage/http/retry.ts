// The one retry policy of storage traffic (Swift, its Keystone login, S3): which failures are worth
// another try, how long to wait before it, and the loop that does both. Each backend passes its
// own limits (storage_retries, its abort signal) and, where its protocol adds failure classes
// (S3's error codes, s3/errors.ts), a classifier built on these.
import { TransportError } from './client.ts'

/**
 * Answers worth another try: a timeout (408), throttling (429; Swift's ratelimit says 498) and any
 * server error (the classes of the AWS SDK's standard retry strategy, which S3 used before it had
 * a client of its own, and Swift's list, which was within them but for 408 and 498).
 */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 498 || (status >= 500 && status <= 599)
}

/**
 * Network failures worth another try: dropped, refused, unreachable, timed out, or an answer cut
 * into something that is not HTTP. The codes of a socket's own error (what a response stream
 * reports) and of our TransportError.
 */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'IDLE_TIMEOUT',
  'EPROTO',
])

/**
 * OpenSSL's verdicts on a server certificate (and Node's on its name), as error codes: a
 * certificate that is not trusted stays so, and trying again only delays the message.
 */
const CERTIFICATE_CODES = new Set([
  'CERT_CHAIN_TOO_LONG',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
])

/**
 * A network failure worth another try: any request that got no answer (TransportError) but a
 * deliberate abort or a certificate that is not trusted, and a socket error with a code of
 * NETWORK_CODES. Never a failure of our own side (the file being read, a disk error).
 */
export function isTransientError(error: unknown): boolean {
  if (error instanceof TransportError) return error.code !== 'ABORTED' && !CERTIFICATE_CODES.has(error.code)
  return networkCode(error) !== undefined
}

/** The code of a network failure (ECONNRESET …) reported by a socket or response stream. */
export function networkCode(error: unknown): string | undefined {
  if (error instanceof TransportError) return error.code
  const code = (error as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' && NETWORK_CODES.has(code) ? code : undefined
}

/** Exponential backoff with full jitter before retry `attempt` (0-based): up to 0.2 s, 0.4 s … 20 s. */
export function backoff(attempt: number, signal?: AbortSignal): Promise<void> {
  const ceiling = Math.min(20_000, 200 * 2 ** attempt)
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TransportError('ABORTED', 'aborted'))
    const onAbort = () => {
      clearTimeout(timer)
      reject(new TransportError('ABORTED', 'aborted'))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, Math.random() * ceiling)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export interface RetryLimits {
  /** Further tries after the first (storage_retries). */
  retries: number
  /** An aborted operation is not tried again (and the backoff stops). */
  signal?: AbortSignal | undefined
  /** Whether a failure is worth another try: isTransientError, or a backend's own built on it. */
  transient: (error: unknown) => boolean
}

/**
 * Runs `attempt` (given its 0-based number) until it succeeds or fails for good: a failure that
 * is not transient, one after an abort, or the last of `retries` further tries. Waits `backoff`
 * before each retry.
 */
export async function withRetries<T>(limits: RetryLimits, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n)
    } catch (error) {
      if (limits.signal?.aborted || n >= limits.retries || !limits.transient(error)) throw error
    }
    await backoff(n, limits.signal)
  }
}
