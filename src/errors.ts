// An error that ends a job, with a message written for the operator who reads the polling body.
// Anything else thrown inside a job is a bug; the runner still turns it into a FAILED job.
export class JobError extends Error {
  override name = 'JobError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/**
 * The stored object's bytes are not the ones written: found by the agent's digest, or by a store
 * that checks digests itself and refuses to serve damaged data (a Swift large object's segment).
 */
export class ChecksumMismatchError extends JobError {
  override name = 'ChecksumMismatchError'
}
