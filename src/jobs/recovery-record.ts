// What the store keeps beside a job's polling body so that a restarted agent can finish what a
// killed one left: the stages entered, the running script, the object under upload, and the
// request. Secrets are kept only while the job runs and only those recovery needs (the storage
// credentials to remove a partial upload, the parameters the cleanup and unlock scripts get),
// sealed with the store's key, never as text; the database password and encryption key are
// never stored.
import { readFileSync } from 'node:fs'
import type { Job, RecordedScript } from './job.ts'
import type { JobRequest } from './request.ts'
import { isSecretParameter } from './request.ts'
import { seal, unseal } from './sealed-secrets.ts'

export interface RecoveryRecord {
  state: string
  attempted: string[]
  uploading: string | undefined
  /** The script process group running now (pid and /proc start time, against pid reuse). */
  script: RecordedScript | undefined
  request: JobRequest
  /** Every stage had passed: only the storage hygiene pass was left (Job.stagesDone). */
  stagesDone?: true
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
  /**
   * While the job runs or owes steps: the storage credentials and secret-named parameters the
   * request held, sealed (src/jobs/sealed-secrets.ts); `request` holds them blanked.
   */
  sealed?: string | undefined
}

/** The secrets a record keeps for recovery (sealed). */
interface KeptSecrets {
  storage: string
  parameters: Record<string, string>
}

export function recoveryRecord(job: Job, pending?: string[]): RecoveryRecord {
  const keepSecrets = job.status === 'RUNNING' || (pending?.length ?? 0) > 0
  return {
    state: job.state,
    attempted: job.attempted,
    uploading: job.uploading,
    script: job.script,
    ...(job.stagesDone ? { stagesDone: true as const } : {}),
    request: storedRequest(job.request),
    ...(pending ? { pending } : {}),
    boot: bootId(),
    ...(keepSecrets ? { sealed: sealedSecrets(job.request) } : {}),
  }
}

/**
 * A request's secrets never change: sealed once per job, not at every write of its record (a
 * cipher per stage and script start was measurable in a no-op job).
 */
const sealedByRequest = new WeakMap<JobRequest, string>()
function sealedSecrets(request: JobRequest): string {
  let sealed = sealedByRequest.get(request)
  if (sealed === undefined) {
    sealed = seal(keptSecrets(request), sealedFor(request))
    sealedByRequest.set(request, sealed)
  }
  return sealed
}

const sealedFor = (request: JobRequest) => `${request.kind}/${request.id}`

function keptSecrets(request: JobRequest): KeptSecrets {
  const d = request.destination
  return {
    storage: d.type === 'S3' ? d.authSecret : d.type === 'SWIFT' ? d.password : '',
    parameters: Object.fromEntries(Object.entries(request.database.parameters).filter(([k]) => isSecretParameter(k))),
  }
}

/**
 * A stored record with its sealed secrets put back into the request. A record whose seal cannot
 * be opened (the key file was lost) keeps them blank: recovery still runs every owed step.
 */
export function readRecord(text: string): RecoveryRecord {
  const record = JSON.parse(text) as RecoveryRecord
  if (record.sealed === undefined) return record
  const kept = unseal(record.sealed, sealedFor(record.request)) as KeptSecrets | undefined
  if (!kept) return record
  const d = record.request.destination
  const destination = d.type === 'S3' ? { ...d, authSecret: kept.storage } : d.type === 'SWIFT' ? { ...d, password: kept.storage } : d
  const parameters = { ...record.request.database.parameters }
  for (const [name, value] of Object.entries(kept.parameters)) if (name in parameters) parameters[name] = value
  return { ...record, request: { ...record.request, destination, database: { ...record.request.database, parameters } } }
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

/** The request as a record stores it: every secret blanked (recovery's are sealed beside it). */
export function storedRequest(request: JobRequest): JobRequest {
  const { destination, database } = request
  const parameters = Object.fromEntries(Object.entries(database.parameters).map(([k, v]) => [k, isSecretParameter(k) ? '' : v]))
  const strippedDestination =
    destination.type === 'S3'
      ? { ...destination, authSecret: '' }
      : destination.type === 'SWIFT'
        ? { ...destination, password: '' }
        : destination
  return {
    ...request,
    encryptionKey: '',
    database: { ...database, password: '', parameters },
    destination: strippedDestination,
  }
}
