// What the store keeps beside a job's polling body so that a restarted agent can finish what a
// killed one left: the stages entered, the running script, the object under upload, and the
// request. Secrets are kept only while the job runs and only those recovery needs (the storage
// credentials to remove a partial upload, the parameters the cleanup and unlock scripts get);
// the database password and encryption key are never stored.
import { readFileSync } from 'node:fs'
import type { Job } from './job.ts'
import type { JobRequest } from './request.ts'
import { isSecretParameter } from './request.ts'

export interface RecoveryRecord {
  state: string
  attempted: string[]
  uploading: string | undefined
  /** The script process group running now (pid and /proc start time, against pid reuse). */
  script: { pid: number; startTime: string; stage: string } | undefined
  request: JobRequest
  /**
   * Recovery steps still owed after a restart ('orphan', 'abandon', then stage names such as
   * 'backup-cleanup' and 'post-backup-unlock'). A step leaves the list only once it has run.
   */
  pending?: string[]
  /**
   * The kernel's boot id when the record was written: a script recorded in another boot was
   * killed by the reboot (it never exited), so its stage is still owed.
   */
  boot?: string | undefined
}

export function recoveryRecord(job: Job, pending?: string[]): RecoveryRecord {
  const keepSecrets = job.status === 'RUNNING' || (pending?.length ?? 0) > 0
  return {
    state: job.state,
    attempted: job.attempted,
    uploading: job.uploading,
    script: job.script,
    request: storedRequest(job.request, keepSecrets),
    ...(pending ? { pending } : {}),
    boot: bootId(),
  }
}

/** The steps a stored record still owes (its `pending` list); none for an unreadable record. */
export function pendingSteps(record: string): string[] {
  try {
    const pending = (JSON.parse(record) as Partial<RecoveryRecord>).pending
    return Array.isArray(pending) ? pending.filter((s) => typeof s === 'string') : []
  } catch {
    return []
  }
}

let boot: string | undefined | null = null

/** This boot's id (/proc/sys/kernel/random/boot_id), read once; undefined where there is none. */
export function bootId(): string | undefined {
  if (boot === null) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined
    } catch {
      boot = undefined
    }
  }
  return boot
}

export function storedRequest(request: JobRequest, keepRecoverySecrets: boolean): JobRequest {
  const { destination, database } = request
  const parameters = keepRecoverySecrets
    ? database.parameters
    : Object.fromEntries(Object.entries(database.parameters).map(([k, v]) => [k, isSecretParameter(k) ? '' : v]))
  const strippedDestination =
    keepRecoverySecrets ? destination
    : destination.type === 'S3' ? { ...destination, authSecret: '' }
    : destination.type === 'SWIFT' ? { ...destination, password: '' }
    : destination
  return {
    ...request,
    encryptionKey: '',
    database: { ...database, password: '', parameters },
    destination: strippedDestination,
  }
}
