// The verify stages (issue 17): a verify job's one stage reads the object its request names and
// checks it (src/integrity/verify.ts); with verify_after_upload a backup's last stage reads back
// what it uploaded and checks it against the digest the upload computed. Neither writes to disk
// or runs a script.
import { ChecksumMismatchError, JobError } from '../errors.ts'
import type { ExpectedDigest } from '../integrity/verify.ts'
import { maskSecrets } from '../scripts/capture.ts'
import type { StageContext } from './stage-context.ts'

// Loaded by the first verify: an agent that never verifies keeps the decoder and zlib out.
const loadVerifier = () => import('../integrity/verify.ts')

/**
 * A verify job: the object of `destination.filename`, with the request's key when it has one,
 * against the digest stored with it and the one this agent recorded when it wrote it.
 */
export async function verifyStoredObject(ctx: StageContext): Promise<void> {
  const { filename } = ctx.job.request.destination
  ctx.job.filename = filename
  await verifyObjectOf(ctx, filename, { encryptionKey: ctx.job.request.encryptionKey, expected: recordedDigest(ctx) })
}

/**
 * The SHA-256 the newest backup of this agent that wrote the object (same destination, prefix
 * and name) computed as it uploaded it. An object replaced in storage together with its
 * metadata, or without any, still fails against it; one this agent did not write (or whose
 * record was pruned) has none.
 */
function recordedDigest(ctx: StageContext): ExpectedDigest[] {
  const destination = ctx.job.request.destination
  for (const { id, body } of ctx.recordedBackups(destination.filename)) {
    const sha256 = (body.checksum as { value?: unknown } | undefined)?.value
    if (typeof sha256 === 'string' && samePlace(body, destination)) return [{ sha256, source: `the agent's record of backup ${id}` }]
  }
  return []
}

/** Whether a backup's polling body names the place a verify reads: same type, prefix, bucket or container and server. */
function samePlace(body: Record<string, unknown>, d: StageContext['job']['request']['destination']): boolean {
  if (body.type !== d.type || body.filenamePrefix !== d.filenamePrefix || body.skip_storage !== false) return false
  if (d.type === 'S3') return body.bucket === d.bucket && body.endpoint === d.endpoint
  if (d.type === 'SWIFT') return body.container_name === d.containerName && body.authUrl === d.authUrl
  return true
}

/**
 * verify_after_upload: the object the backup just stored, against the SHA-256 the upload
 * computed. Frames are not opened (a backup's key is a public key or the passphrase that made
 * them); the digest proves the stored bytes are the ones written.
 */
export async function verifyUploadedObject(ctx: StageContext): Promise<void> {
  const { checksum } = ctx.job
  const expected = checksum === undefined ? [] : [{ sha256: checksum, source: 'the digest the upload computed' }]
  await verifyObjectOf(ctx, ctx.job.filename, { encryptionKey: '', expected })
}

async function verifyObjectOf(
  ctx: StageContext,
  filename: string,
  keys: { encryptionKey: string; expected: ExpectedDigest[] },
): Promise<void> {
  const { job } = ctx
  const storage = ctx.storage()
  if (!storage.read) throw new JobError(`the ${storage.location} storage cannot read an object as a stream, so it cannot verify one`)
  const { verifyObject, newVerificationReport } = await loadVerifier()
  const report = newVerificationReport(filename)
  job.verification = report // polls see bytes_read grow
  try {
    const object = await storage.read(filename, { ...ctx.transferOptions(null), signal: ctx.signal })
    const progress = ctx.transferOptions(object.size ?? null)
    const outcome = await verifyObject(object, report, {
      filename,
      ...keys,
      requireChecksum: ctx.requireChecksum,
      onProgress: progress.onProgress,
    })
    job.filesize = report.bytes_read
    job.checksum = outcome.checksum
    job.checksumVerified = outcome.checksumVerified
    if (outcome.failure) throw outcome.failure
  } catch (error) {
    // A store that checks digests itself (a Swift large object's segments against its manifest)
    // refuses damaged data before the agent sees it: a finding about the object all the same.
    if (report.failure === undefined && error instanceof ChecksumMismatchError) {
      report.failure = { check: 'checksum', message: error.message, offset: null, frame: null }
      job.checksumVerified = false
    }
    throw error
  } finally {
    job.progress = undefined
    // The report goes to polls as it is (the job's error_message is masked by the runner).
    if (report.failure) report.failure.message = maskSecrets(report.failure.message, ctx.secrets)
  }
}
