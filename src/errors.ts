// An error that ends a job, with a message written for the operator who reads the polling body.
// Anything else thrown inside a job is a bug; the runner still turns it into a FAILED job.
export class JobError extends Error {
  override name = 'JobError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}
