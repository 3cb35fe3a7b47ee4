// Which failed S3 requests are worth another attempt. The SDK retries requests itself, except a
// request whose body is a stream (it cannot rewind one): the part loop retries those parts with a
// fresh stream, and decides as the SDK's standard retry strategy does (@smithy/core's retry
// submodule: isTransientError, isThrottlingError, isServerError), so a part streamed from a file
// is retried on exactly the failures a buffered part would be.

const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException'])
const THROTTLING_NAMES = new Set([
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
])
/** Connection failures (Node's codes). */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

interface SdkLikeError {
  name?: string
  code?: string
  cause?: unknown
  $retryable?: unknown
  $metadata?: { httpStatusCode?: number }
}

/** True for a timeout, a dropped or refused connection, throttling, or any 5xx answer. */
export function isTransientS3Error(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null) return false
  const e = error as SdkLikeError
  if (e.name === 'AbortError') return false
  const status = e.$metadata?.httpStatusCode ?? 0
  return (
    e.$retryable !== undefined ||
    TRANSIENT_NAMES.has(e.name ?? '') ||
    THROTTLING_NAMES.has(e.name ?? '') ||
    NETWORK_CODES.has(e.code ?? '') ||
    status === 429 ||
    (status >= 500 && status <= 599) ||
    (e.cause !== undefined && depth < 10 && isTransientS3Error(e.cause, depth + 1))
  )
}
