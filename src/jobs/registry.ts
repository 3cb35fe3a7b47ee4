// Every known job, its already-serialised polling body, and the job slots.
//
// GET /backup/{id} is the manager's hot path (one thread polls every job every 5 s), so the
// polling body is serialised once per change here and a poll only looks the string up.
import type { Job } from './job.ts'
import { pollingBody } from './job.ts'
import type { JobKind } from './request.ts'

export interface JobEntry {
  job: Job
  /** JSON of pollingBody(job), refreshed by publish(). */
  body: string
}

export type StartRefusal = 'exists' | 'full'

export class JobRegistry {
  readonly #jobs: Record<JobKind, Map<string, JobEntry>> = { backup: new Map(), restore: new Map() }
  readonly #maxRunning: number
  #running = 0

  constructor(maxRunning: number) {
    this.#maxRunning = maxRunning
  }

  get running(): number {
    return this.#running
  }

  get(kind: JobKind, id: string): JobEntry | undefined {
    return this.#jobs[kind].get(id)
  }

  /**
   * Registers a RUNNING job and takes a slot, or says why not. Synchronous, so the job is
   * visible to GET before the trigger's 201 is written.
   */
  start(job: Job): StartRefusal | JobEntry {
    const jobs = this.#jobs[job.kind]
    if (jobs.has(job.id)) return 'exists'
    if (this.#running >= this.#maxRunning) return 'full'
    const entry: JobEntry = { job, body: '' }
    jobs.set(job.id, entry)
    this.#running++
    this.publish(job)
    return entry
  }

  /** Makes the job's current state visible to polls. */
  publish(job: Job): void {
    const entry = this.#jobs[job.kind].get(job.id)
    if (entry?.job === job) entry.body = JSON.stringify(pollingBody(job))
  }

  /** Publishes the final state and gives the slot back; called once per job by the runner. */
  finish(job: Job): void {
    this.#running--
    this.publish(job)
  }

  /** Removes a finished job; a running one stays ('running'). */
  delete(kind: JobKind, id: string): 'deleted' | 'running' | 'unknown' {
    const entry = this.#jobs[kind].get(id)
    if (!entry) return 'unknown'
    if (entry.job.status === 'RUNNING') return 'running'
    this.#jobs[kind].delete(id)
    return 'deleted'
  }
}
