// The stages of a backup and of a restore, as data (SPEC §5). The runner walks a table; what a
// stage does lives here, when it runs is its `runIf`.
import { createReadStream, lstatSync, readdirSync } from 'node:fs'
import { link, mkdtemp, rename, type FileHandle } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { join } from 'node:path'
import { JobError } from '../errors.ts'
import { processStartTime } from '../scripts/process-group.ts'
import { runScript, stageLimit } from '../scripts/run.ts'
import { digestFile } from '../storage/files/digest.ts'
import type { Downloaded, Storage, TransferOptions } from '../storage/storage.ts'
import { hasTrailer, readFileHeader, type Compression, type StreamHeader } from '../integrity/format.ts'
import { TrailerDigest, verifiedTrailer, type ObjectDigest } from '../integrity/trailer.ts'
import { restoreFilenameProblem } from './file-base.ts'
import { loadCodec, openBackupStream, openRestoreStream, STREAM_SUFFIX, type ScriptStream } from './streaming.ts'
import { createJobFile, DOWNLOAD_WORK_PREFIX, entryAt, jobFileName, openPrivateDirectory, removeEntries, removeEntry } from './directory.ts'
import type { Job } from './job.ts'
import type { JobKind } from './request.ts'
import { STAGE_TABLE, type StageInfo } from './stage-names.ts'

export type { RunIf, StageKind } from './stage-names.ts'
export { logFields, shouldRun } from './stage-names.ts'

export interface StageContext {
  job: Job
  /** The job's working directory (directory_backup/<id> or directory_restore/<id>): the scripts' cwd. */
  directory: string
  /**
   * Where the agent itself reads and writes: the directory it prepared, held open (JobDirectory
   * in directory.ts). Throws when the name no longer leads to it.
   */
  pinnedDirectory: () => string
  /** The scripts' working directory (JobDirectory.scriptDirectory); `finishing`: cleanup and unlock. */
  scriptDirectory: (finishing: boolean) => string
  /** `YYYY_MM_DD_HH_MM_<host>_<database>`, sanitised, fixed when the job starts. */
  fileBase: string
  scriptsPath: string
  scriptEnv: Record<string, string>
  secrets: readonly string[]
  logMaxBytes: number
  allowedToDeleteFiles: boolean
  /** Refuse to restore an object that has no stored checksum. */
  requireChecksum: boolean
  /** false: the database password and encryption key go in the environment, not in argv. */
  scriptSecretArgs: boolean
  /** Group for the files the agent writes (job_group). */
  jobGid: number | undefined
  storage: () => Storage
  /** Aborted when the job is cancelled; cleanup and unlock stages get one that never aborts. */
  signal: AbortSignal | undefined
  /** Limits for main scripts (backup, restore) and for hooks (lock, check, cleanup, unlock). */
  scriptTimeoutMs: number
  hookTimeoutMs: number
  /** Makes a change of the job visible (and durable) now. */
  changed: () => void
  /** Options for a storage transfer of this job (progress, attempts, cancel). */
  transferOptions: (total: number | null) => TransferOptions
  /** Compression of streamed backups when the request asks for compression. */
  streamCompression: Compression
}

export interface Stage extends StageInfo {
  /** Stages that do not apply to this job (a transfer with skipStorage) are left out. */
  applies?: (job: Job) => boolean
  run: (ctx: StageContext) => Promise<void>
}

/** A stage's body, given its place in STAGE_TABLE. */
type StageBody = (info: StageInfo) => Stage

interface ScriptStageExtras {
  /** Variables added to the script's environment for this stage. */
  env?: (ctx: StageContext) => Record<string, string>
  /** Runs after the script succeeded. */
  after?: (ctx: StageContext) => Promise<void>
  /** A stream beside the script (BACKUP_STREAM, RESTORE_STREAM). */
  stream?: (ctx: StageContext) => Promise<ScriptStream | undefined>
}

const scriptStage = (args: (ctx: StageContext) => string[], options: ScriptStageExtras = {}): StageBody => (info) => {
  const { name, kind } = info
  const logField = info.logField ?? name.replaceAll('-', '_')
  return {
    ...info,
    async run(ctx) {
      // One timeout and one cancel for the whole stage: the script, and a stream it leaves behind.
      const limit = stageLimit(name, ctx.signal, kind === 'main' ? ctx.scriptTimeoutMs : ctx.hookTimeoutMs)
      try {
        const cwd = ctx.scriptDirectory(kind === 'cleanup' || kind === 'unlock')
        const stream = await options.stream?.(ctx)
        const signals = [limit.signal, stream?.stopScript].filter((s) => s !== undefined)
        let group: number | undefined
        const running = runScript({
          stage: name,
          scriptsPath: ctx.scriptsPath,
          args: args(ctx),
          cwd,
          env: { ...ctx.scriptEnv, ...options.env?.(ctx), ...stream?.env },
          secrets: ctx.secrets,
          logMaxBytes: ctx.logMaxBytes,
          signal: signals.length > 0 ? AbortSignal.any(signals) : undefined,
          onSpawn(pid) {
            group = pid
            // recorded so that a restarted agent can find a group a killed one left running
            const startTime = processStartTime(pid)
            if (startTime !== undefined) ctx.job.script = { pid, startTime, stage: name }
            ctx.changed()
          },
        })
        // A script that could not even start (missing, unsafe) must not leave its stream open.
        const result = await running.catch(async (error: unknown) => {
          await stream?.finish({ scriptSucceeded: false, group, stage: limit.signal })
          throw error
        })
        ctx.job.logs[`${logField}_log`] = result.stdout
        ctx.job.logs[`${logField}_errorlog`] = result.stderr
        try {
          // The script stays recorded while the agent waits for its stream: a restarted agent
          // then stops what its group left holding the stream (recovery.ts, stopOrphan).
          await stream?.finish({ scriptSucceeded: result.failure === undefined, group, stage: limit.signal })
        } finally {
          ctx.job.script = undefined
        }
        if (result.failure) throw result.failure
        await options.after?.(ctx)
      } finally {
        limit.clear()
      }
    },
  }
}

const usesStorage = (job: Job) => !job.request.destination.skipStorage

const db = (ctx: StageContext) => ctx.job.request.database

/**
 * The database password and the encryption key. Positional arguments are world-readable in
 * /proc/<pid>/cmdline, a process's environment is not: with script_secret_args=false they are
 * passed as empty arguments (so positions stay the same) and as DB_PASSWORD / ENCRYPTION_KEY.
 */
const secretArg = (ctx: StageContext, value: string) => (ctx.scriptSecretArgs ? value : '')
const secretEnv = (ctx: StageContext): Record<string, string> =>
  ctx.scriptSecretArgs ? {} : { DB_PASSWORD: db(ctx).password, ENCRYPTION_KEY: ctx.job.request.encryptionKey }

const scriptOptions = (ctx: StageContext) => [ctx.job.id, String(ctx.job.request.compression), secretArg(ctx, ctx.job.request.encryptionKey)]

const BODIES: Record<string, StageBody> = {
  'pre-backup-lock': scriptStage((c) => [db(c).database]),
  'pre-backup-check': scriptStage((c) => [db(c).database]),
  backup: scriptStage((c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, c.fileBase, ...scriptOptions(c)], {
    env: secretEnv,
    after: recordBackupFile,
    stream: openBackupStream,
  }),
  upload: (info) => ({ ...info, applies: (job) => usesStorage(job) && !job.streamed, run: uploadBackupFile }),
  'backup-cleanup': scriptStage((c) => [db(c).database, c.job.id]),
  'post-backup-unlock': scriptStage((c) => [db(c).database]),
  'pre-restore-lock': scriptStage((c) => [c.job.id]),
  download: (info) => ({ ...info, applies: (job) => usesStorage(job) && !job.streamRestore, run: downloadRestoreFile }),
  restore: scriptStage((c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, restoreFileArgument(c.job), ...scriptOptions(c)], {
    env: secretEnv,
    stream: openRestoreStream,
  }),
  'restore-cleanup': scriptStage((c) => [c.job.id]),
  'post-restore-unlock': scriptStage(() => []),
}

const withBodies = (table: readonly StageInfo[]): readonly Stage[] =>
  table.map((info) => {
    const body = BODIES[info.name]
    if (!body) throw new Error(`stage ${info.name} has no body in src/jobs/stages.ts`)
    return body(info)
  })

export const BACKUP_STAGES: readonly Stage[] = withBodies(STAGE_TABLE.backup)
export const RESTORE_STAGES: readonly Stage[] = withBodies(STAGE_TABLE.restore)
export const STAGES: Record<JobKind, readonly Stage[]> = { backup: BACKUP_STAGES, restore: RESTORE_STAGES }

/**
 * The backup script chose the file's name and extension; the first regular file by name in the
 * job directory is the backup (symlinks are ignored: they could point anywhere).
 */
async function recordBackupFile(ctx: StageContext): Promise<void> {
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
      if (info.nlink > 1) throw new JobError(`the backup file ${name} has ${info.nlink} hard links, so it may be a file outside ${ctx.directory}; it is not uploaded (write the dump into the job directory rather than link it there)`)
      // A name the restore would refuse leaves the manager a backup it cannot restore.
      const problem = restoreFilenameProblem(name)
      if (problem) throw new JobError(`the backup file's name ${problem}, so it could not be restored: it is not uploaded (have the backup script write file_name_without_type plus an extension)`)
      ctx.job.filename = name
      ctx.job.filesize = info.size
      return
    }
  }
  if (usesStorage(ctx.job)) throw new JobError(`the backup script left no file in ${ctx.directory}`)
  ctx.job.filename = ctx.fileBase
  ctx.job.filesize = 0
}

async function uploadBackupFile(ctx: StageContext): Promise<void> {
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

async function downloadRestoreFile(ctx: StageContext): Promise<void> {
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
      return new JobError(`${what} failed: cannot write in the job directory ${directory}: ${problem} (${code}); the partial file was removed`, { cause: error })
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
function verifyDownload(ctx: StageContext, filename: string, digest: ObjectDigest, stored: string | undefined, header: StreamHeader | undefined): void {
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
    throw new JobError(`checksum mismatch: ${filename} should have SHA-256 ${stored} but the downloaded bytes have ${digest.whole}; the file was deleted`)
  } else {
    job.checksumVerified = true
  }
}

const isStreamedObject = (filename: string) => filename.endsWith(STREAM_SUFFIX)

/**
 * The file the restore script gets: the object's name, or for a streamed object restored
 * through a file, the decoded dump beside it (the name without `.osb`: `..osb` gives `.`, so the
 * download checks it again as a file name).
 */
function restoreFileArgument(job: Job): string {
  const { filename } = job.request.destination
  return isStreamedObject(filename) && !job.streamRestore ? filename.slice(0, -STREAM_SUFFIX.length) : filename
}

/** Decodes a verified `.osb` download into a new file the restore script reads (its digest was checked: not hashed again). */
async function decodeInto(encoded: string, target: string, encryptionKey: string, gid: number | undefined): Promise<string> {
  const { createDecoder } = await loadCodec()
  const file = await createJobFile(target, gid)
  try {
    await pipeline(createReadStream(encoded, { highWaterMark: 1024 * 1024 }), createDecoder(encryptionKey, { verify: false }), file.createWriteStream({ highWaterMark: 1024 * 1024 }))
  } finally {
    await file.close()
  }
  return target
}
