// Every known job, its already-serialised polling body, and the job slots.
//
// GET /backup/{id} is the manager's hot path (one thread polls every job every 5 s), so the
// polling body is serialised once per change here and a poll only looks the string up. Each
// change is written to the store as it is made: what a poll shows survives a restart.
//
// Only what polls ask for stays in memory: the bodies of running jobs and of jobs whose recovery
// owes steps, and of the few finished jobs most recently polled (RecentBodies). Any other
// finished job's body is read from the store when asked for (a row not written yet is in memory).
//
// A store that cannot be written (a full disk, EIO, a read-only filesystem) never stops a job:
// no write throws out of here. The row stays in memory, polls answer from memory, and every
// unwritten row is written on the next write or by a bounded retry timer once the store takes
// writes again. While rows wait, new jobs are refused (503) and /healthz says so.
import type { Job, JobStatus } from './job.ts'
import { pollingBody } from './job.ts'
import { JOB_KINDS, type JobKind } from './request.ts'
import { RecentBodies } from './recent-bodies.ts'
import { pendingSteps, recoveryRecord } from './recovery-record.ts'
import { storeWriteProblem, type JobStore, type StoredJob, type StoredKey } from './store.ts'
import { jobSummary, type JobSummary } from './summary.ts'

export interface JobEntry {
  kind: JobKind
  id: string
  status: JobStatus
  /**
   * JSON of the polling body, refreshed by publish(), while it is in memory: always for a job
   * that is running or owes steps, for a finished one while it is among the recently used
   * (JobRegistry.pollingBody reads it otherwise).
   */
  body?: string | undefined
  /** The UTF-8 bytes of `body`, encoded on the first poll after a change (see pollingBytes). */
  bytes?: Buffer | undefined
  endedAt: number | null
  startedAt: number
  /** The listing's view of the job, made from the body while it is in memory (see summaryOf). */
  summary?: JobSummary | undefined
  /** Present while this process runs the job. */
  live?: LiveJob
  /**
   * Running, or its recovery still owes steps (cleanup, unlock): the id can be neither deleted,
   * pruned nor reused until they have run.
   */
  owed: boolean
}

/** A job this process runs, and what cancels it (JobRegistry.cancel aborts, the runner listens). */
export interface LiveJob {
  job: Job
  cancel: AbortController
}

/** The entry of a job start() registered: its runner gets the job's cancel signal from it. */
export type StartedEntry = JobEntry & { live: LiveJob }

/** Where a listing page ended: the last job shown. */
export interface JobCursor {
  startedAt: number
  id: string
}

export type StartRefusal = 'exists' | 'full' | 'closing' | 'store'

/** Retries of unwritten rows: the first after 1 s, doubling up to every 30 s while any waits. */
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 30_000

/** A removal the store has not taken yet. */
interface Removal {
  kind: JobKind
  id: string
  removed: true
}

/** Told when the store stops or starts taking writes again (main.ts logs it). */
export type StoreWatcher = (problem: string | undefined, error?: unknown) => void

/** Why a poll could not be answered: the body of a finished job is in neither memory nor the store. */
export class BodyUnreadable extends Error {}

/** Passed to the watcher when the store's files left directory_state while the agent ran. */
export const RELOCATED = new Error(
  'the job store was removed or replaced while the agent ran: it is made again and every job record written to it again',
)

export class JobRegistry {
  readonly #jobs: Record<JobKind, Map<string, JobEntry>> = { backup: new Map(), restore: new Map(), verify: new Map() }
  readonly #maxRunning: number
  readonly #store: JobStore
  #running = 0
  #closing = false
  /** Rows (and removals) the store has not taken yet, by `kind/id`; the newest state wins. */
  readonly #unwritten = new Map<string, StoredJob | Removal>()
  /**
   * Set when the store was found relocated: every row its old files held (JobStore.relocated), by
   * `kind/id`, kept in memory until they are written to the store made again at its path.
   */
  #rewrite: Map<string, StoredJob> | undefined
  /** Finished jobs whose body is in memory. */
  readonly #recent = new RecentBodies<JobEntry>()
  #storeProblem: string | undefined
  #retry: NodeJS.Timeout | undefined
  #retryMs = RETRY_FIRST_MS
  readonly #watch: StoreWatcher | undefined
  #onIdle: (() => void) | undefined

  constructor(maxRunning: number, store: JobStore, watch?: StoreWatcher) {
    this.#maxRunning = maxRunning
    this.#store = store
    this.#watch = watch
    // A store that holds no job yet and could not be created (a full disk at the first start)
    if (store.notCreated !== undefined) this.#failed(store.notCreated)
  }

  /** While the store cannot be written: what went wrong, for the operator (no path). */
  get storeProblem(): string | undefined {
    return this.#storeProblem
  }

  /** Rows waiting to be written. */
  get unwritten(): number {
    return this.#unwritten.size
  }

  get running(): number {
    return this.#running
  }

  /**
   * Loads the stored jobs; returns those that still owe work, for recovery: the ones a killed
   * agent left RUNNING and the finished ones whose recovery was itself interrupted.
   */
  load(): StoredJob[] {
    const owing: StoredJob[] = []
    for (const row of this.#store.keys()) {
      const entry = this.#entryOf(row)
      this.#jobs[row.kind].set(row.id, entry)
      if (entry.owed) owing.push(row as StoredJob)
      else entry.body = undefined // read when polled
    }
    return owing
  }

  get(kind: JobKind, id: string): JobEntry | undefined {
    return this.#jobs[kind].get(id)
  }

  /** True once close() was called: the agent is shutting down. */
  get closing(): boolean {
    return this.#closing
  }

  /**
   * The polling body as bytes, encoded once per change. Node writes a large string response
   * about ten times slower than the same bytes as a Buffer (measured with bench/: 0.7 MB bodies,
   * 250 against 2,700 answers a second), and a body with full logs is that large.
   * The bytes get a memory block of their own: a short body encoded by Buffer.from is a slice of
   * a shared pool, and a finished job's cached slice kept that whole pool alive (after 1000
   * jobs, ~7 MB of pools held by ~700-byte bodies).
   */
  pollingBytes(entry: JobEntry): Buffer {
    const body = this.pollingBody(entry)
    if (entry.bytes === undefined) {
      entry.bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(body, 'utf8'))
      entry.bytes.write(body, 'utf8')
      if (!this.#held(entry)) this.#recent.use(entry) // counted with its bytes now
    }
    return entry.bytes
  }

  /**
   * The job's polling body as it is now: from memory, else (a finished job not polled lately)
   * from the store, kept among the recently used. Throws BodyUnreadable when the store cannot
   * be read.
   */
  pollingBody(entry: JobEntry): string {
    const body = (entry.body ??= this.#unheldBody(entry))
    if (!this.#held(entry)) this.#recent.use(entry)
    return body
  }

  /** A finished job's body: the row waiting to be written, or the one a relocation carries, or the store's. */
  #unheldBody(entry: JobEntry): string {
    const key = keyOf(entry.kind, entry.id)
    const waiting = this.#unwritten.get(key) ?? this.#rewrite?.get(key)
    if (waiting !== undefined && !('removed' in waiting)) return waiting.body
    let body: string | undefined
    try {
      body = this.#store.body(entry.kind, entry.id)
    } catch (error) {
      throw new BodyUnreadable(`the job store could not be read: ${(error as Error).message}`)
    }
    if (body === undefined) throw new BodyUnreadable(`the job store has no record of ${entry.kind} ${entry.id}`)
    return body
  }

  /** Whether the entry keeps its body in memory whatever polls ask: it runs here, or its recovery owes steps. */
  #held(entry: JobEntry): boolean {
    return entry.live !== undefined || entry.owed
  }

  /** The listing's view of a job; kept on the entry only while its body is. */
  #summaryOf(entry: JobEntry): JobSummary {
    if (entry.summary !== undefined) return entry.summary
    const held = entry.body !== undefined
    const summary = jobSummary(entry.id, JSON.parse(this.pollingBody(entry)) as Record<string, unknown>)
    if (held) entry.summary = summary
    return summary
  }

  /** `callback` runs whenever the last running job has finished (main.ts: memory back to the VM). */
  whenIdle(callback: () => void): void {
    this.#onIdle = callback
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

  /** Jobs known, running and finished, of both kinds. */
  get size(): number {
    return JOB_KINDS.reduce((sum, kind) => sum + this.#jobs[kind].size, 0)
  }

  /** Running jobs of this process, for shutdown. */
  liveJobs(): JobEntry[] {
    return JOB_KINDS.flatMap((kind) => [...this.#jobs[kind].values()].filter((e) => e.live))
  }

  /** Whether a running job of this process is uploading an object named `filename` now (storage hygiene keeps its parts). */
  uploadingNow(filename: string): boolean {
    return [...this.#jobs.backup.values()].some((e) => e.live?.job.uploading === filename)
  }

  /**
   * Registers a RUNNING job and takes a slot, or says why not. Synchronous, so the job is
   * visible to GET before the trigger's 201 is written. The entry carries the job's cancel
   * signal (`live.cancel.signal`), which the caller hands to the runner.
   */
  start(job: Job): StartRefusal | StartedEntry {
    const jobs = this.#jobs[job.kind]
    if (jobs.has(job.id)) return 'exists'
    if (this.#closing) return 'closing'
    // A job whose record cannot be kept is not started: a crash would lose it, and its unlock.
    if (this.#storeProblem !== undefined && !this.#flush()) return 'store'
    if (this.#running >= this.#maxRunning) return 'full'
    const entry: StartedEntry = {
      kind: job.kind,
      id: job.id,
      status: job.status,
      body: '',
      endedAt: null,
      startedAt: job.startedAt.getTime(),
      summary: jobSummary(job.id, {}),
      live: { job, cancel: new AbortController() },
      owed: true,
    }
    if (!this.publish(job, entry)) {
      this.#unwritten.delete(keyOf(job.kind, job.id))
      return 'store'
    }
    jobs.set(job.id, entry)
    this.#running++
    return entry
  }

  /**
   * Makes the job's current state visible to polls and writes it to the store. Never throws:
   * false when the store did not take the write (the row waits in memory, see #flush).
   */
  publish(job: Job, entry = this.#jobs[job.kind].get(job.id)): boolean {
    if (!entry || (entry.live && entry.live.job !== job)) return true
    const polling = pollingBody(job)
    const body = JSON.stringify(polling)
    const endedAt = job.endedAt?.getTime() ?? null
    entry.status = job.status
    entry.body = body
    entry.bytes = undefined
    entry.endedAt = endedAt
    entry.summary = jobSummary(job.id, polling)
    entry.owed = job.status === 'RUNNING'
    if (!this.#held(entry)) this.#recent.use(entry)
    return this.#write({
      kind: job.kind,
      id: job.id,
      status: job.status,
      body,
      record: JSON.stringify(recoveryRecord(job)),
      startedAt: job.startedAt.getTime(),
      endedAt,
    })
  }

  /**
   * Stores a row as it is (recovery of a job this process does not run); never throws, false
   * when the store did not take it. A job this process runs owns its id: its entry is not
   * replaced (an old job's recovery never writes over a new job).
   */
  replace(row: StoredJob): boolean {
    const jobs = this.#jobs[row.kind]
    const entry = jobs.get(row.id)
    if (entry?.live) return false
    if (entry) this.#recent.forget(entry)
    const replaced = this.#entryOf(row)
    jobs.set(row.id, replaced)
    if (!replaced.owed) this.#recent.use(replaced)
    return this.#write(row)
  }

  /** The entry of a stored job: with its body when it has one (a row JobStore.keys left without is read when polled). */
  #entryOf(row: StoredKey | StoredJob): JobEntry {
    // A record owes steps only with a non-empty `pending` list, which JSON.stringify writes as
    // `"pending":["`: other records are not parsed (a string holding those characters has its
    // quotes escaped, and a match is only a reason to parse).
    const full = 'record' in row ? row : undefined
    const owed = row.status === 'RUNNING' || (full?.record.includes('"pending":["') === true && pendingSteps(full.record).length > 0)
    return { kind: row.kind, id: row.id, status: row.status, body: full?.body, endedAt: row.endedAt, startedAt: row.startedAt, owed }
  }

  /** Queues the row (the newest state of its job wins) and writes every queued row. */
  #write(item: StoredJob | Removal): boolean {
    const key = keyOf(item.kind, item.id)
    this.#unwritten.delete(key)
    this.#unwritten.set(key, item)
    return this.#flush()
  }

  /** Writes the queued rows in order; stops at the first failure. True when none is left. */
  #flush(): boolean {
    let relocated = false
    try {
      this.#store.ensureOpen()
      // directory_state was removed or replaced: the store made again there gets every row the
      // old files held in one transaction, also when that waits; the unwritten ones follow
      this.#carry(this.#store.relocated())
      if (this.#rewrite) {
        this.#store.replaceAll([...this.#rewrite.values()])
        this.#rewrite = undefined
        relocated = true
      }
    } catch (error) {
      this.#failed(error)
      return false
    }
    for (const [key, item] of this.#unwritten) {
      try {
        if ('removed' in item) this.#store.remove(item.kind, item.id)
        else this.#store.save(item)
      } catch (error) {
        this.#failed(error)
        return false
      }
      this.#unwritten.delete(key)
    }
    if (relocated) this.#watch?.(undefined, RELOCATED) // logged once written: a crash after it loses nothing
    if (this.#storeProblem !== undefined) {
      this.#storeProblem = undefined
      clearTimeout(this.#retry)
      this.#retry = undefined
      this.#retryMs = RETRY_FIRST_MS
      this.#watch?.(undefined)
    }
    return true
  }

  /**
   * Keeps the rows a relocated store's old files held until they are written again. Found
   * relocated again before that (the store made again was replaced too), it held none of them
   * yet: the rows kept first stay.
   */
  #carry(rows: StoredJob[] | undefined): void {
    if (rows === undefined) return
    this.#rewrite ??= new Map()
    for (const row of rows) {
      const key = keyOf(row.kind, row.id)
      if (!this.#rewrite.has(key)) this.#rewrite.set(key, row)
    }
  }

  #failed(error: unknown): void {
    const first = this.#storeProblem === undefined
    this.#storeProblem = storeWriteProblem(error)
    if (first) this.#watch?.(this.#storeProblem, error)
    if (this.#retry) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS)
      this.#flush()
    }, this.#retryMs)
    this.#retry.unref()
  }

  /**
   * Called every few seconds (main.ts): a store whose files were removed or replaced while no job
   * changed is made again and written in full before a crash could lose what it held.
   */
  checkStore(): void {
    if (this.#storeProblem === undefined) this.#flush()
  }

  /**
   * At shutdown: one last attempt to write the waiting rows, then no more retries. Returns how
   * many rows the store still did not take (lost when the process exits).
   */
  writeOut(): number {
    this.#flush()
    clearTimeout(this.#retry)
    this.#retry = undefined
    return this.#unwritten.size
  }

  /**
   * One page of a kind's jobs, newest first (by start, then id), optionally of one status,
   * starting after the job a cursor names. Jobs are few (max_job_records), so a sort per call
   * costs less than keeping an index in step with every change.
   */
  list(
    kind: JobKind,
    query: { status?: JobStatus | undefined; limit: number; after?: JobCursor | undefined },
  ): { jobs: JobSummary[]; next: JobCursor | undefined } {
    const newestFirst = [...this.#jobs[kind].values()]
      .filter((e) => query.status === undefined || e.status === query.status)
      .sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    const { after } = query
    const from =
      after === undefined
        ? 0
        : newestFirst.findIndex((e) => e.startedAt < after.startedAt || (e.startedAt === after.startedAt && e.id < after.id))
    const page = from < 0 ? [] : newestFirst.slice(from, from + query.limit)
    const last = page.at(-1)
    const more = from >= 0 && from + query.limit < newestFirst.length
    return {
      jobs: page.map((e) => this.#summaryOf(e)),
      next: more && last ? { startedAt: last.startedAt, id: last.id } : undefined,
    }
  }

  /**
   * The ids and polling bodies of the backups that named their file `filename`, newest first (a
   * verify compares the object with the digest the agent computed as it wrote it).
   */
  backupsOf(filename: string): { id: string; body: Record<string, unknown> }[] {
    const stored = this.#store.backupsNaming(filename)
    const inMemory = (e: JobEntry) => {
      const key = keyOf(e.kind, e.id)
      return e.body !== undefined || this.#unwritten.has(key) || this.#rewrite?.has(key) === true
    }
    // a body in memory may be newer than the store's: the store's answer counts only for the others
    return [...this.#jobs.backup.values()]
      .filter((e) => (inMemory(e) ? this.#summaryOf(e).filename === filename : stored.has(e.id)))
      .sort((a, b) => b.startedAt - a.startedAt)
      .map((e) => ({ id: e.id, body: JSON.parse(this.pollingBody(e)) as Record<string, unknown> }))
  }

  /**
   * Publishes the final state and gives the slot back; called once per job by the runner.
   * False when the store did not take the write (the row waits in memory).
   */
  finish(job: Job): boolean {
    const entry = this.#jobs[job.kind].get(job.id)
    const written = this.publish(job)
    if (entry?.live?.job === job) {
      delete entry.live
      if (!entry.owed) this.#recent.use(entry) // its body is now one of the finished ones'
    }
    this.#running--
    if (this.#running === 0) this.#onIdle?.()
    return written
  }

  /**
   * Removes a finished job. A running one stays ('running'), and so does one whose recovery
   * still owes steps ('owed'): its id must not be reused before its unlock has run.
   */
  delete(kind: JobKind, id: string): 'deleted' | 'running' | 'owed' | 'unknown' {
    const entry = this.#jobs[kind].get(id)
    if (!entry) return 'unknown'
    if (entry.status === 'RUNNING') return 'running'
    if (entry.owed) return 'owed'
    this.#jobs[kind].delete(id)
    this.#recent.forget(entry)
    this.#write({ kind, id, removed: true })
    return 'deleted'
  }

  /**
   * Forgets finished jobs older than the retention or beyond the record limit, oldest first;
   * never one that is running, owes steps or waits to be written.
   */
  prune(now: number, retentionMs: number, maxRecords: number): number {
    let candidates: { kind: JobKind; id: string }[]
    try {
      candidates = this.#store.prunable(now - retentionMs, maxRecords)
    } catch {
      return 0 // an unreadable store prunes nothing; the next run tries again
    }
    let pruned = 0
    for (const { kind, id } of candidates) {
      if (this.#unwritten.has(keyOf(kind, id))) continue
      if (this.delete(kind, id) === 'deleted') pruned++
    }
    return pruned
  }
}

const keyOf = (kind: JobKind, id: string) => `${kind}/${id}`
