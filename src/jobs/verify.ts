// The verify stages (issue 17): a verify job's one stage reads the object its request names and
// checks it (src/integrity/verify.ts); with verify_after_upload a backup's last stage reads back
// what it uploaded and checks it against the digest the upload computed. Neither writes to disk
// or runs a script.
import { JobError } from '../errors.ts'
import type { StageContext } from './stage-context.ts'

// Loaded by the first verify: an agent that never verifies keeps the decoder and zlib out.
const loadVerifier = () => import('../integrity/verify.ts')

/** A verify job: the object of `destination.filename`, with the request's key when it has one. */
export async function verifyStoredObject(ctx: StageContext): Promise<void> {
  const { filename } = ctx.job.request.destination
  ctx.job.filename = filename
  await verifyObjectOf(ctx, filename, { encryptionKey: ctx.job.request.encryptionKey, expectedSha256: undefined })
}

/**
 * verify_after_upload: the object the backup just stored, against the SHA-256 the upload
 * computed. Frames are not opened (a backup's key is a public key or the passphrase that made
 * them); the digest proves the stored bytes are the ones written.
 */
export async function verifyUploadedObject(ctx: StageContext): Promise<void> {
  await verifyObjectOf(ctx, ctx.job.filename, { encryptionKey: '', expectedSha256: ctx.job.checksum })
}

async function verifyObjectOf(
  ctx: StageContext,
  filename: string,
  keys: { encryptionKey: string; expectedSha256: string | undefined },
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
  } finally {
    job.progress = undefined
  }
}
