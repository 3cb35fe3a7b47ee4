// Swift's answers and network failures, turned into messages an operator can act on: what failed,
// where, as whom, what Swift said, and what to check. Never a password (it is not in here), and
// never a token: a server (or a proxy before it) that echoes the request in its error answer
// would otherwise put the X-Auth-Token into the job's message, its log line and the store.
import { ChecksumMismatchError, JobError } from '../../errors.ts'
import { maskSecrets } from '../../scripts/capture.ts'
import { serverAnswer } from './keystone.ts'
import { networkCode } from '../http/retry.ts'

export interface SwiftContext {
  /** "upload of backup.sql", "download of backup.sql" … */
  what: string
  container: string
  username: string
  storageUrl: string
  /** The tokens sent so far, masked in every message. */
  tokens?: Iterable<string>
}

function withoutTokens(ctx: SwiftContext, text: string): string {
  return ctx.tokens ? maskSecrets(text, [...ctx.tokens]) : text
}

/** A Swift answer that is not the one we needed. `subject` is 'container' or 'object' for a 404. */
/** What a request was about: a container, an object, or the GET of an object's content ('read'). */
type Subject = 'container' | 'object' | 'read'

export function swiftStatusError(ctx: SwiftContext, status: number, text: string, subject: Subject = 'object'): JobError {
  const answer = serverAnswer(status, text, ctx.tokens ? [...ctx.tokens] : [])
  const where = `Swift account ${ctx.storageUrl}`
  switch (status) {
    case 401:
      return new JobError(`${ctx.what} failed: ${where} refused the token of user "${ctx.username}" even after a new login (${answer})`)
    case 403:
      return new JobError(
        `${ctx.what} failed: user "${ctx.username}" may not do this in container "${ctx.container}" of ${where} (${answer}); check the user's roles (member or swiftoperator) and the container's ACL`,
      )
    case 404:
      return subject === 'container'
        ? containerMissing(ctx)
        : new JobError(`${ctx.what} failed: the object does not exist in container "${ctx.container}" of ${where}`)
    case 409:
      // Swift answers a GET of a large object whose segment no longer matches the etag its
      // manifest holds with 409: the stored object is damaged, whatever asked for it.
      if (subject === 'read')
        return new ChecksumMismatchError(
          `${ctx.what} failed: checksum mismatch: a segment of this large object in container "${ctx.container}" no longer matches the digest its manifest holds (Swift answered ${answer}); the stored object is damaged or a segment was replaced`,
        )
      break
    case 413:
      return new JobError(
        `${ctx.what} failed: Swift refused the data: quota exceeded or object too large (${answer}); check the quota of container "${ctx.container}" and of the account`,
      )
    case 507:
      return new JobError(`${ctx.what} failed: Swift has no space left (${answer})`)
  }
  return new JobError(`${ctx.what} failed: ${where} answered ${answer}`)
}

export function containerMissing(ctx: SwiftContext): JobError {
  return new JobError(
    `${ctx.what} failed: container "${ctx.container}" does not exist in Swift account ${ctx.storageUrl}; create it (the agent does not create containers) or fix container_name`,
  )
}

/** Anything thrown while talking to Swift, as a JobError. */
export function swiftFailure(ctx: SwiftContext, error: unknown): JobError {
  if (error instanceof JobError) return error
  const where = ctx.storageUrl || 'the Swift endpoint'
  const code = networkCode(error)
  switch (code) {
    case undefined:
      break
    case 'CONNECT_TIMEOUT':
    case 'IDLE_TIMEOUT':
    case 'ETIMEDOUT':
      return new JobError(`${ctx.what} failed: ${where} did not answer in time (${withoutTokens(ctx, (error as Error).message)})`, {
        cause: error,
      })
    case 'ECONNRESET':
    case 'EPIPE':
      return new JobError(`${ctx.what} failed: the connection to ${where} broke off (${code})`, { cause: error })
    default:
      return new JobError(`${ctx.what} failed: cannot reach ${where} (${code})`, { cause: error })
  }
  const message = withoutTokens(ctx, error instanceof Error ? error.message : String(error))
  // A local file problem (ENOSPC, EACCES …): the message names the file, Swift has no part in it.
  if ((error as { syscall?: string }).syscall !== undefined) return new JobError(`${ctx.what} failed: ${message}`, { cause: error })
  return new JobError(`${ctx.what} failed at ${where}: ${message}`, { cause: error })
}
