// Every known job, its already-serialised polling body, and the job slots.
//
// GET /backup/{id} is the manager's hot path (one thread polls every job every 5 s), so the
// polling body is serialised once per change here and a poll only looks the string up. Each
// change is written to the store first: what a poll shows survives a restart.
import type { Job, JobStatus } from './job.ts'
import { pollingBody } from './job.ts'
import type { JobKind } from './request.ts'
import { recoveryRecord } from './recovery-record.ts'
import type { JobStore, StoredJob } from './store.ts'

export interface JobEntry {
  kind: JobKind
  id: string
  status: JobStatus
  /** JSON of the polling body, refreshed by publish(). */
  body: string
  /** The UTF-8 bytes of `body`, encoded on the first poll after a change (see pollingBytes). */
  bytes?: Buffer | undefined
  endedAt: number | null
  /** Present while this process runs the job. */
  live?: { job: Job; cancel: AbortController }
}

export type StartRefusal = 'exists' | 'full' | 'closing'

export class JobRegistry {
  readonly #jobs: Record<JobKind, Map<string, JobEntry>> = { backup: new Map(), restore: new Map() }
  readonly #maxRunning: number
  readonly #store: JobStore
  #running = 0
  #closing = false

  constructor(maxRunning: number, store: JobStore) {
    this.#maxRunning = maxRunning
    this.#store = store
  }

  get running(): number {
    return this.#running
  }

  /** Loads the stored jobs; returns those a killed agent left RUNNING, for recovery. */
  load(): StoredJob[] {
    const interrupted: StoredJob[] = []
    for (const row of this.#store.all()) {
      this.#jobs[row.kind].set(row.id, { kind: row.kind, id: row.id, status: row.status, body: row.body, endedAt: row.endedAt })
      if (row.status === 'RUNNING') interrupted.push(row)
    }
    return interrupted
  }

  get(kind: JobKind, id: string): JobEntry | undefined {
    return this.#jobs[kind].get(id)
  }

  /**
   * The polling body as bytes, encoded once per change. Node writes a large string response
   * about ten times slower than the same bytes as a Buffer (measured with bench/: 0.7 MB bodies,
   * 250 against 2,700 answers a second), and a body with full logs is that large.
   */
  pollingBytes(entry: JobEntry): Buffer {
    entry.bytes ??= Buffer.from(entry.body, 'utf8')
    return entry.bytes
  }

  /** From now on no job starts (shutdown); polls are still answered. */
  close(): void {
    this.#closing = true
  }

  /** Stops a running job: its current main stage is stopped, cleanup and unlock still run. */
  cancel(kind: JobKind, id: string, reason = 'cancelled'): 'cancelled' | 'not running' | 'unknown' {
    const entry = this.#jobs[kind].get(id)
    if (!entry) return 'unknown'
    if (!entry.live || entry.status !== 'RUNNING') return 'not running'
    entry.live.cancel.abort(reason)
    return 'cancelled'
  }

  /** Running jobs of this process, for shutdown. */
  liveJobs(): JobEntry[] {
    return [...this.#jobs.backup.values(), ...this.#jobs.restore.values()].filter((e) => e.live)
  }

  /**
   * Registers a RUNNING job and takes a slot, or says why not. Synchronous, so the job is
   * visible to GET before the trigger's 201 is written.
   */
  start(job: Job): StartRefusal | JobEntry {
    const jobs = this.#jobs[job.kind]
    if (jobs.has(job.id)) return 'exists'
    if (this.#closing) return 'closing'
    if (this.#running >= this.#maxRunning) return 'full'
    const entry: JobEntry = { kind: job.kind, id: job.id, status: job.status, body: '', endedAt: null, live: { job, cancel: new AbortController() } }
    this.publish(job, entry)
    jobs.set(job.id, entry)
    this.#running++
    return entry
  }

  /** Writes the job's current state to the store, then makes it visible to polls. */
  publish(job: Job, entry = this.#jobs[job.kind].get(job.id)): void {
    if (!entry || (entry.live && entry.live.job !== job)) return
    const body = JSON.stringify(pollingBody(job))
    const endedAt = job.endedAt?.getTime() ?? null
    this.#store.save({
      kind: job.kind,
      id: job.id,
      status: job.status,
      body,
      record: JSON.stringify(recoveryRecord(job)),
      startedAt: job.startedAt.getTime(),
      endedAt,
    })
    entry.status = job.status
    entry.body = body
    entry.bytes = undefined
    entry.endedAt = endedAt
  }

  /** Stores a row as it is (recovery of a job this process does not run). */
  replace(row: StoredJob): void {
    this.#store.save(row)
    const entry = this.#jobs[row.kind].get(row.id)
    if (entry) Object.assign(entry, { status: row.status, body: row.body, bytes: undefined, endedAt: row.endedAt })
  }

  /** Publishes the final state and gives the slot back; called once per job by the runner. */
  finish(job: Job): void {
    this.publish(job)
    const entry = this.#jobs[job.kind].get(job.id)
    if (entry?.live?.job === job) delete entry.live
    this.#running--
  }

  /** Removes a finished job; a running one stays ('running'). */
  delete(kind: JobKind, id: string): 'deleted' | 'running' | 'unknown' {
    const entry = this.#jobs[kind].get(id)
    if (!entry) return 'unknown'
    if (entry.status === 'RUNNING') return 'running'
    this.#store.remove(kind, id)
    this.#jobs[kind].delete(id)
    return 'deleted'
  }

  /** Forgets finished jobs older than the retention or beyond the record limit, oldest first. */
  prune(now: number, retentionMs: number, maxRecords: number): number {
    const doomed = this.#store.prunable(now - retentionMs, maxRecords)
    for (const { kind, id } of doomed) this.delete(kind, id)
    return doomed.length
  }
}
