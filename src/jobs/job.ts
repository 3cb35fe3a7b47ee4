// The job record and the polling body the manager reads (SPEC §4).
import type { VerificationReport } from '../integrity/verify.ts'
import type { JobKind, JobRequest } from './request.ts'
import { utcTimestamp } from '../util/time.ts'

export type JobStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED'

/** A stage's script as the record names it: pid and /proc start time (against pid reuse). */
export interface RecordedScript {
  pid: number
  startTime: string
  stage: string
  /**
   * Set while the script is a held child of the helper (forked, waiting for go, src/scripts/held.ts),
   * dropped once it was seen to run. A held script that is gone never ran: its stage is owed.
   */
  held?: true
}

export interface Job {
  kind: JobKind
  id: string
  request: JobRequest
  status: JobStatus
  /** Name of the running stage; 'finished' at the end. */
  state: string
  errorMessage: string
  startedAt: Date
  endedAt: Date | undefined
  filename: string
  filesize: number
  /** Script output by polling field name (`backup_log`, `backup_errorlog`, …). */
  logs: Record<string, string>
  /** Names of the stages entered so far, in order: what recovery needs after a crash. */
  attempted: string[]
  /** The object being written while an upload runs; recovery removes what it left behind. */
  uploading: string | undefined
  /** Requests made by the transfer stage, retries included (0 before any transfer). */
  attempts: number
  /** The script process group running now, if any. */
  script: RecordedScript | undefined
  /** SHA-256 of the stored object: computed for a backup, read from the object for a restore. */
  checksum: string | undefined
  /** Restore: whether the downloaded bytes matched the stored checksum (undefined before). */
  checksumVerified: boolean | undefined
  /** While a transfer runs. */
  progress: TransferProgress | undefined
  /** Backup: the script wrote BACKUP_STREAM, the object is a streamed `.osb`. */
  streamed: boolean
  /** Restore: the restore script reads RESTORE_STREAM instead of a file. */
  streamRestore: boolean
  /**
   * Every stage has run and passed; only the storage hygiene pass may still be going
   * (storage-hygiene.ts). A restart then finds the backup complete, with nothing owed.
   */
  stagesDone?: boolean
  /** Backup: what the storage hygiene pass after it reclaimed (storage-hygiene.ts); undefined when none ran. */
  reclaimed?: StorageReclaimed | undefined
  /** A verify job, or a backup with verify_after_upload: what the read of the stored object found (src/jobs/verify.ts). */
  verification?: VerificationReport | undefined
}

export interface StorageReclaimed {
  objects: number
  bytes: number
}

export interface TransferProgress {
  bytes_done: number
  bytes_total: number | null
  bytes_per_second: number
}

export function newJob(request: JobRequest, logFields: readonly string[], now = new Date()): Job {
  const logs: Record<string, string> = {}
  for (const field of logFields) logs[field] = ''
  return {
    kind: request.kind,
    id: request.id,
    request,
    status: 'RUNNING',
    state: 'starting',
    errorMessage: '',
    startedAt: now,
    endedAt: undefined,
    filename: '',
    filesize: 0,
    logs,
    attempted: [],
    uploading: undefined,
    attempts: 0,
    script: undefined,
    checksum: undefined,
    checksumVerified: undefined,
    progress: undefined,
    streamed: false,
    streamRestore: false,
  }
}

const MESSAGES: Record<JobKind, Record<JobStatus, string>> = {
  backup: { RUNNING: 'backup is running', SUCCEEDED: 'backup successfully carried out', FAILED: 'backup failed' },
  restore: { RUNNING: 'restore is running', SUCCEEDED: 'restore successfully carried out', FAILED: 'restore failed' },
  verify: { RUNNING: 'verify is running', SUCCEEDED: 'verify successfully carried out', FAILED: 'verify failed' },
}

/** The polling body; keys in the old agent's order, empty optional fields left out. */
export function pollingBody(job: Job): Record<string, unknown> {
  const { destination } = job.request
  const body: Record<string, unknown> = {
    status: job.status,
    message: MESSAGES[job.kind][job.status],
    state: job.state,
  }
  if (job.errorMessage !== '') body.error_message = job.errorMessage
  body.type = destination.type
  body.compression = job.request.compression
  body.skip_storage = destination.skipStorage
  if (destination.type === 'S3') {
    body.useSSL = destination.useSSL
    body.skipSSL = !destination.useSSL
    putIfSet(body, 'endpoint', destination.endpoint)
    putIfSet(body, 'bucket', destination.bucket)
    putIfSet(body, 'region', destination.region)
  } else if (destination.type === 'SWIFT') {
    const useSSL = destination.authUrl.toLowerCase().startsWith('https:')
    body.useSSL = useSSL
    body.skipSSL = !useSSL
    putIfSet(body, 'authUrl', destination.authUrl)
    putIfSet(body, 'domain', destination.domain)
    putIfSet(body, 'container_name', destination.containerName)
    putIfSet(body, 'project_name', destination.projectName)
  }
  body.filenamePrefix = destination.filenamePrefix
  body.filename = job.filename
  body.filesize = { size: job.filesize, unit: 'byte' }
  body.start_time = utcTimestamp(job.startedAt)
  body.end_time = job.endedAt ? utcTimestamp(job.endedAt) : ''
  body.execution_time_ms = job.endedAt ? job.endedAt.getTime() - job.startedAt.getTime() : 0
  if (job.attempts > 0) body.attempts = job.attempts
  if (job.checksum) body.checksum = { algorithm: 'sha256', value: job.checksum }
  if (job.checksumVerified !== undefined) body.checksum_verified = job.checksumVerified
  if (job.progress) body.progress = job.progress
  if (job.reclaimed) body.storage_reclaimed = job.reclaimed
  if (job.verification) body.verification = job.verification
  Object.assign(body, job.logs)
  return body
}

function putIfSet(body: Record<string, unknown>, key: string, value: string | undefined): void {
  if (value !== undefined && value !== '') body[key] = value
}
