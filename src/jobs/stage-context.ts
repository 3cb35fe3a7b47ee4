// What a stage body is given (StageContext) and what a stage is (its place in STAGE_TABLE plus
// its body). Types only: the runner, recovery, the stage bodies and the streams share them
// without importing one another.
import type { Compression } from '../integrity/format.ts'
import type { Storage, TransferOptions } from '../storage/storage.ts'
import type { Job } from './job.ts'
import type { StageInfo } from './stage-names.ts'

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
  /** Refuse to restore (or pass a verify of) an object that has no stored checksum. */
  requireChecksum: boolean
  /** verify_after_upload: a backup reads back what it uploaded before it succeeds. */
  verifyAfterUpload: boolean
  /** This agent's backups that named their file `filename`, newest first (JobRegistry.backupsOf). */
  recordedBackups: (filename: string) => { id: string; body: Record<string, unknown> }[]
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
  applies?: (job: Job, ctx: StageContext) => boolean
  run: (ctx: StageContext) => Promise<void>
  /**
   * The body stores the stage's start itself, in the write that records its script's pid, before
   * the script can act (a held script, src/scripts/spawner.ts); the runner then does not store it
   * on entry (one store write per stage less).
   */
  recordsItsStart?: () => boolean
}

/** A stage's body, given its place in STAGE_TABLE. */
export type StageBody = (info: StageInfo) => Stage
