// S3's answers that are not a success, and which failed S3 requests are worth another attempt: the
// statuses and network failures of the one retry policy (../http/retry.ts), and S3's own error
// codes of the AWS SDK's standard retry strategy (@smithy/core's isTransientError,
// isThrottlingError), which the agent used before it had a client of its own.
import { isTransientError, isTransientStatus } from '../http/retry.ts'

const TRANSIENT_CODES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException'])
const THROTTLING_CODES = new Set([
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

/** An answer that is not a success. */
export class S3Error extends Error {
  override name = 'S3Error'
  /** The HTTP status; 200 for an error document sent under a 200 (CompleteMultipartUpload). */
  readonly status: number
  /** S3's error code (NoSuchKey, SlowDown …); undefined when the body was not S3's XML (a proxy's HTML page). */
  readonly code: string | undefined
  /** The bucket's region, when the answer names it (x-amz-bucket-region, or <Region>). */
  readonly region: string | undefined

  constructor(status: number, code: string | undefined, message: string | undefined, region: string | undefined) {
    super(message?.trim() || (code ?? `HTTP ${status}`))
    this.status = status
    this.code = code
    this.region = region
  }
}

/**
 * True for a dropped, refused or timed-out connection, throttling, any 5xx answer, and an error
 * document under a 200. Never for an abort, an untrusted certificate, a refusal (403, 404, a
 * missing bucket) or a failure of our own side (the file being read).
 */
export function isTransientS3Error(error: unknown): boolean {
  if (error instanceof S3Error) {
    const { status, code = '' } = error
    return status < 300 || isTransientStatus(status) || TRANSIENT_CODES.has(code) || THROTTLING_CODES.has(code)
  }
  return isTransientError(error)
}
