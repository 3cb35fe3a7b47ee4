// The transfer stages' bodies: the file the backup script left is recorded (the backup stage's
// last step) and uploaded; a restore's object is downloaded, verified and decoded into the job
// directory before the restore script sees it. Streamed transfers run beside their script
// instead (streaming.ts). Both pass their storage backend the options below: cancellation, the
// attempts counter, and the polling body's progress, published at most once a second.
import { createReadStream, lstatSync, readdirSync } from 'node:fs'
import { link, mkdtemp, rename, type FileHandle } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { join } from 'node:path'
import { JobError } from '../errors.ts'
import { digestFile } from '../storage/files/digest.ts'
import type { Downloaded, TransferOptions } from '../storage/storage.ts'
import { hasTrailer, isStreamedObject, readFileHeader, STREAM_SUFFIX, type StreamHeader } from '../integrity/format.ts'
import { TrailerDigest, verifiedTrailer, type ObjectDigest } from '../integrity/trailer.ts'
import { createJobFile, DOWNLOAD_WORK_PREFIX, entryAt, jobFileName, openPrivateDirectory, removeEntries, removeEntry } from './directory.ts'
import { restoreFilenameProblem } from './file-base.ts'
import type { Job } from './job.ts'
import type { StageContext } from './stage-context.ts'
import { loadCodec } from './streaming.ts'

/** `moved`: told the bytes done so far as they move (the agent's collections during long transfers). */
export function transferOptions(
  job: Job,
  changed: () => void,
  signal: AbortSignal | undefined,
  total: number | null,
  moved?: (bytesDone: number) => void,
): TransferOptions {
  const started = Date.now()
  let published = 0
  job.progress = { bytes_done: 0, bytes_total: total, bytes_per_second: 0 }
  return {
    signal,
    onRequest: () => {
      job.attempts++
    },
    onProgress: (done: number) => {
      moved?.(done)
      const now = Date.now()
      const seconds = (now - started) / 1000
      job.progress = { bytes_done: done, bytes_total: total, bytes_per_second: seconds > 0 ? Math.round(done / seconds) : 0 }
      if (now - published >= 1000) {
        published = now
        changed()
      }
    },
  }
}

/** Whether the job has a storage to transfer to or from (not skip_storage). */
export const usesStorage = (job: Job) => !job.request.destination.skipStorage

/**
 * The backup script chose the file's name and extension; the first regular file by name in the
 * job directory is the backup (symlinks are ignored: they could point anywhere).
 */
export async function recordBackupFile(ctx: StageContext): Promise<void> {
  if (ctx.job.streamed) return
  // Synchronous, like the job directory's preparation (src/jobs/directory.ts): a listing and a
  // stat or two of the agent's own directory, cheaper than two thread-pool round trips.
  const here = ctx.pinnedDirectory()
  const names = readdirSync(here).sort()
  for (const name of names) {
    const info = lstatSync(join(here, name))
    if (info.isFile()) {
      // A second name of the file may be outside the job directory (`ln /etc/shadow dump.sql`):
      // its content is not the job's to ship. A dump is written, not linked.
      if (info.nlink > 1)
        throw new JobError(
          `the backup file ${name} has ${info.nlink} hard links, so it may be a file outside ${ctx.directory}; it is not uploaded (write the dump into the job directory rather than link it there)`,
        )
      // A name the restore would refuse leaves the manager a backup it cannot restore.
      const problem = restoreFilenameProblem(name)
      if (problem)
        throw new JobError(
          `the backup file's name ${problem}, so it could not be restored: it is not uploaded (have the backup script write file_name_without_type plus an extension)`,
        )
      ctx.job.filename = name
      ctx.job.filesize = info.size
      return
    }
  }
  if (usesStorage(ctx.job)) throw new JobError(`the backup script left no file in ${ctx.directory}`)
  ctx.job.filename = ctx.fileBase
  ctx.job.filesize = 0
}

export async function uploadBackupFile(ctx: StageContext): Promise<void> {
  const { filename } = ctx.job
  const path = join(ctx.pinnedDirectory(), filename)
  // recorded first: a restarted agent removes what an interrupted upload left behind
  ctx.job.uploading = filename
  ctx.changed()
  // Hashed by a worker thread while the upload runs: the backend awaits the digest when it
  // needs it (S3 before it starts, a Swift SLO only for its manifest). See docs/INTEGRITY.md.
  const stop = new AbortController()
  const checksum = digestFile({ path, algorithm: 'sha256', signal: ctx.signal ? AbortSignal.any([ctx.signal, stop.signal]) : stop.signal })
  checksum.catch(() => {}) // the backend may fail before it awaits the digest
  try {
    await ctx.storage().upload(path, filename, { ...ctx.transferOptions(ctx.job.filesize), sha256: checksum })
    ctx.job.checksum = await checksum
  } finally {
    stop.abort('the upload has ended') // a backend that failed early leaves the read unfinished
    ctx.job.uploading = undefined
    ctx.job.progress = undefined
  }
}

export async function downloadRestoreFile(ctx: StageContext): Promise<void> {
  // Checked here, where the agent writes them (the trigger checks the request's name too).
  const filename = jobFileName(ctx.job.request.destination.filename, 'the restore filename')
  const name = restoreFileArgument(ctx.job)
  const here = ctx.pinnedDirectory()
  const target = join(here, name === filename ? name : jobFileName(name, `the decoded file's name (${filename} without ${STREAM_SUFFIX})`))
  const shown = join(ctx.directory, name) // messages name the file as configured, not the held descriptor
  await makeRoomFor(target, shown, ctx.allowedToDeleteFiles)
  // Downloaded and decoded in a fresh directory of the agent's own (0700, a random name) and
  // moved into place once verified: the restore script never sees a partial or corrupt file
  // under the name it reads, nothing planted in the job directory lies in the way of what the
  // agent writes, and no name of the agent's can be the restore filename.
  const workPath = await mkdtemp(join(here, DOWNLOAD_WORK_PREFIX)).catch((error: unknown) => {
    throw jobDirectoryWriteFailure(error, `download of ${filename}`, ctx.directory) ?? error
  })
  let workHandle: FileHandle | undefined
  // One pass gives both the whole-object digest and, holding back the last 32 bytes, the one a
  // version-2 `.osb` trailer must match (src/integrity/trailer.ts).
  const digest = new TrailerDigest()
  try {
    workHandle = await openPrivateDirectory(workPath)
    // Through the handle: a symlink swapped in at the directory's name cannot redirect a write.
    const work = `/proc/self/fd/${workHandle.fd}`
    const object = join(work, 'object')
    const file = await createJobFile(object, ctx.jobGid).catch((error: unknown) => {
      throw jobDirectoryWriteFailure(error, `download of ${filename}`, ctx.directory) ?? error
    })
    let downloaded: Downloaded
    try {
      downloaded = await ctx.storage().download(filename, file, {
        ...ctx.transferOptions(null),
        onChunk: (chunk) => digest.update(chunk),
      })
    } catch (error) {
      throw jobDirectoryWriteFailure(error, `download of ${filename}`, ctx.directory) ?? error
    } finally {
      await file.close()
    }
    ctx.job.filename = filename
    ctx.job.filesize = downloaded.size
    const streamed = isStreamedObject(filename)
    // An unreadable header is checked like a version-1 object (the stored digest, if any); the
    // decoder then reports what is wrong with it.
    const header = streamed ? await readFileHeader(object).catch(() => undefined) : undefined
    verifyDownload(ctx, filename, digest.digest(), downloaded.sha256, header)
    const ready = streamed
      ? await decodeInto(object, join(work, 'decoded'), ctx.job.request.encryptionKey, ctx.jobGid).catch((error: unknown) => {
          throw jobDirectoryWriteFailure(error, `decoding ${filename}`, ctx.directory) ?? error
        })
      : object
    await moveIntoPlace(ready, target, shown, ctx.allowedToDeleteFiles)
  } finally {
    ctx.job.progress = undefined
    if (workHandle) {
      // through the handle: what the agent wrote goes, wherever its directory was moved
      const work = `/proc/self/fd/${workHandle.fd}`
      await removeEntries(work).catch(() => {})
      await workHandle.close()
    }
    await removeEntry(workPath)
  }
}

// What more space or a writable filesystem would cure, by errno.
const LOCAL_WRITE_PROBLEMS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only filesystem',
  EIO: 'I/O error',
}

// The calls that write the agent's own files (a read of the storage's side never counts).
const WRITING_CALLS = new Set(['write', 'open', 'mkdtemp', 'mkdir', 'fsync', 'ftruncate', 'fchmod', 'fchown'])

/**
 * A failed write of the agent's own file in the job directory, found anywhere in the cause chain
 * (storage clients wrap it in a message that names the storage, which had no part in it): a
 * message that names the job directory and the cause, or undefined for any other failure.
 */
function jobDirectoryWriteFailure(error: unknown, what: string, directory: string): JobError | undefined {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, syscall } = e as { code?: unknown; syscall?: unknown }
    const problem = typeof code === 'string' ? LOCAL_WRITE_PROBLEMS[code] : undefined
    if (problem !== undefined && typeof syscall === 'string' && WRITING_CALLS.has(syscall)) {
      return new JobError(
        `${what} failed: cannot write in the job directory ${directory}: ${problem} (${code}); the partial file was removed`,
        { cause: error },
      )
    }
  }
  return undefined
}

const notReplaced = (target: string) => new JobError(`${target} already exists and allowed_to_delete_files is false, so it is not replaced`)

/**
 * Before a download: whatever is at the restore file's name (a symlink counts, it is never
 * followed) stays when allowed_to_delete_files is false (the job fails before it downloads), and
 * a directory there is removed when it is true (a rename cannot replace one).
 */
async function makeRoomFor(target: string, shown: string, allowedToDeleteFiles: boolean): Promise<void> {
  const existing = entryAt(target)
  if (existing === undefined) return
  if (!allowedToDeleteFiles) throw notReplaced(shown)
  if (existing.isDirectory()) await removeEntry(target)
}

/**
 * A rename replaces a symlink at the target, never writes through it. Without permission to
 * replace, a hard link puts the file in place only if nothing took the name meanwhile (link(2)
 * fails on any entry, a dangling symlink included).
 */
async function moveIntoPlace(ready: string, target: string, shown: string, allowedToDeleteFiles: boolean): Promise<void> {
  if (allowedToDeleteFiles) return rename(ready, target)
  try {
    await link(ready, target)
  } catch (error) {
    throw (error as { code?: string }).code === 'EEXIST' ? notReplaced(shown) : error
  }
}

/**
 * Before the restore script sees anything: a version-2 `.osb` object must match its own trailer
 * (and the stored digest, when there is one); any other object its stored digest, when it has
 * one. Sets the job's `checksum` and `checksum_verified`; throws "checksum mismatch" (the caller
 * deletes the download) or, without a digest and with require_checksum, refuses.
 */
function verifyDownload(
  ctx: StageContext,
  filename: string,
  digest: ObjectDigest,
  stored: string | undefined,
  header: StreamHeader | undefined,
): void {
  const { job } = ctx
  job.checksumVerified = false
  job.checksum = stored // what a failure reports
  if (header && hasTrailer(header)) {
    job.checksum = verifiedTrailer(digest, filename, stored)
    job.checksumVerified = true
    return
  }
  if (stored === undefined) {
    if (ctx.requireChecksum) throw new JobError(`${filename} has no stored checksum and require_checksum is true`)
  } else if (stored.toLowerCase() !== digest.whole) {
    throw new JobError(
      `checksum mismatch: ${filename} should have SHA-256 ${stored} but the downloaded bytes have ${digest.whole}; the file was deleted`,
    )
  } else {
    job.checksumVerified = true
  }
}

/**
 * The file the restore script gets: the object's name, or for a streamed object restored
 * through a file, the decoded dump beside it (the name without `.osb`: `..osb` gives `.`, so the
 * download checks it again as a file name).
 */
export function restoreFileArgument(job: Job): string {
  const { filename } = job.request.destination
  return isStreamedObject(filename) && !job.streamRestore ? filename.slice(0, -STREAM_SUFFIX.length) : filename
}

/** Decodes a verified `.osb` download into a new file the restore script reads (its digest was checked: not hashed again). */
async function decodeInto(encoded: string, target: string, encryptionKey: string, gid: number | undefined): Promise<string> {
  const { createDecoder } = await loadCodec()
  const file = await createJobFile(target, gid)
  try {
    await pipeline(
      createReadStream(encoded, { highWaterMark: 1024 * 1024 }),
      createDecoder(encryptionKey, { verify: false }),
      file.createWriteStream({ highWaterMark: 1024 * 1024 }),
    )
  } finally {
    await file.close()
  }
  return target
}
