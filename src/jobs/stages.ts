// The stages of a backup and of a restore, as data (SPEC §5). The runner walks a table; what a
// stage does lives here, when it runs is its `runIf`.
import { readdir, rename, rm, stat, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { JobError } from '../errors.ts'
import { runScript } from '../scripts/run.ts'
import type { Storage } from '../storage/storage.ts'
import { protectJobFile } from './directory.ts'
import type { Job } from './job.ts'
import type { JobKind } from './request.ts'

/** What a stage is, which decides when it runs after a failure. */
export type StageKind = 'lock' | 'check' | 'main' | 'transfer' | 'cleanup' | 'unlock'

/**
 * - ok: only while nothing has failed
 * - mainStarted: once a main or transfer stage was attempted, even after a failure (cleanup)
 * - lockAttempted: once the lock stage was attempted, whatever happened since (unlock)
 */
export type RunIf = 'ok' | 'mainStarted' | 'lockAttempted'

export interface StageContext {
  job: Job
  /** The job's working directory (directory_backup/<id> or directory_restore/<id>). */
  directory: string
  /** `YYYY_MM_DD_HH_MM_<host>_<database>`, sanitised, fixed when the job starts. */
  fileBase: string
  scriptsPath: string
  scriptEnv: Record<string, string>
  secrets: readonly string[]
  logMaxBytes: number
  allowedToDeleteFiles: boolean
  /** false: the database password and encryption key go in the environment, not in argv. */
  scriptSecretArgs: boolean
  /** Group for the files the agent writes (job_group). */
  jobGid: number | undefined
  storage: () => Storage
  signal: AbortSignal
}

export interface Stage {
  name: string
  kind: StageKind
  runIf: RunIf
  /** Stages that do not apply to this job (a transfer with skipStorage) are left out. */
  applies?: (job: Job) => boolean
  /** Prefix of the polling body's `<prefix>_log` / `<prefix>_errorlog` fields, for script stages. */
  logField?: string
  run: (ctx: StageContext) => Promise<void>
}

interface ScriptStageExtras {
  /** Variables added to the script's environment for this stage. */
  env?: (ctx: StageContext) => Record<string, string>
  /** Runs after the script succeeded. */
  after?: (ctx: StageContext) => Promise<void>
}

function scriptStage(
  name: string,
  kind: StageKind,
  runIf: RunIf,
  args: (ctx: StageContext) => string[],
  { env, after }: ScriptStageExtras = {},
): Stage {
  const logField = name.replaceAll('-', '_')
  return {
    name,
    kind,
    runIf,
    logField,
    async run(ctx) {
      const result = await runScript({
        stage: name,
        scriptsPath: ctx.scriptsPath,
        args: args(ctx),
        cwd: ctx.directory,
        env: env ? { ...ctx.scriptEnv, ...env(ctx) } : ctx.scriptEnv,
        secrets: ctx.secrets,
        logMaxBytes: ctx.logMaxBytes,
        signal: ctx.signal,
      })
      ctx.job.logs[`${logField}_log`] = result.stdout
      ctx.job.logs[`${logField}_errorlog`] = result.stderr
      if (result.failure) throw result.failure
      await after?.(ctx)
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

export const BACKUP_STAGES: readonly Stage[] = [
  scriptStage('pre-backup-lock', 'lock', 'ok', (c) => [db(c).database]),
  scriptStage('pre-backup-check', 'check', 'ok', (c) => [db(c).database]),
  scriptStage(
    'backup',
    'main',
    'ok',
    (c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, c.fileBase, ...scriptOptions(c)],
    { env: secretEnv, after: recordBackupFile },
  ),
  { name: 'upload', kind: 'transfer', runIf: 'ok', applies: usesStorage, run: uploadBackupFile },
  scriptStage('backup-cleanup', 'cleanup', 'mainStarted', (c) => [db(c).database, c.job.id]),
  scriptStage('post-backup-unlock', 'unlock', 'lockAttempted', (c) => [db(c).database]),
]

export const RESTORE_STAGES: readonly Stage[] = [
  scriptStage('pre-restore-lock', 'lock', 'ok', (c) => [c.job.id]),
  { name: 'download', kind: 'transfer', runIf: 'ok', applies: usesStorage, run: downloadRestoreFile },
  scriptStage(
    'restore',
    'main',
    'ok',
    (c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, c.job.request.destination.filename, ...scriptOptions(c)],
    { env: secretEnv },
  ),
  scriptStage('restore-cleanup', 'cleanup', 'mainStarted', (c) => [c.job.id]),
  scriptStage('post-restore-unlock', 'unlock', 'lockAttempted', () => []),
]

export const STAGES: Record<JobKind, readonly Stage[]> = { backup: BACKUP_STAGES, restore: RESTORE_STAGES }

/** Every `*_log` / `*_errorlog` field of a kind's polling body, in stage order. */
export function logFields(kind: JobKind): string[] {
  return STAGES[kind].flatMap((s) => (s.logField ? [`${s.logField}_log`, `${s.logField}_errorlog`] : []))
}

/**
 * The backup script chose the file's name and extension; the first regular file by name in the
 * job directory is the backup (symlinks are ignored: they could point anywhere).
 */
async function recordBackupFile(ctx: StageContext): Promise<void> {
  const names = (await readdir(ctx.directory)).sort()
  for (const name of names) {
    const info = await lstat(join(ctx.directory, name))
    if (info.isFile()) {
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
  await ctx.storage().upload(join(ctx.directory, ctx.job.filename), ctx.job.filename)
}

async function downloadRestoreFile(ctx: StageContext): Promise<void> {
  const { filename } = ctx.job.request.destination
  const target = join(ctx.directory, filename)
  if (await stat(target).catch(() => undefined)) {
    if (!ctx.allowedToDeleteFiles) {
      throw new JobError(`${target} already exists and allowed_to_delete_files is false, so it is not replaced`)
    }
  }
  // Download beside the target and rename at the end: a failed download never leaves a partial
  // file under the name the restore script reads.
  const partial = join(ctx.directory, `.${filename}.download`)
  try {
    const { size } = await ctx.storage().download(filename, partial)
    await protectJobFile(partial, ctx.jobGid)
    await rename(partial, target)
    ctx.job.filename = filename
    ctx.job.filesize = size
  } finally {
    await rm(partial, { force: true })
  }
}
