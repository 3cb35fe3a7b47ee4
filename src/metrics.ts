// Prometheus metrics (GET /metrics): jobs started and finished, running jobs, stage durations,
// bytes and transfer time by storage backend, failures by reason, plus the process's own
// (memory, CPU, event loop; src/metrics/process.ts). A registry of its own, so tests and
// embedders get no globals. The exposition is written by src/metrics/exposition.ts.
import type { JobError } from './errors.ts'
import type { Job } from './jobs/job.ts'
import type { FailureReason, JobObserver } from './jobs/observer.ts'
import type { JobRegistry } from './jobs/registry.ts'
import { JOB_KINDS as KINDS } from './jobs/request.ts'
import type { Stage } from './jobs/stage-context.ts'
import { CONTENT_TYPE, Registry } from './metrics/exposition.ts'
import { EventLoopMetrics, registerProcessMetrics } from './metrics/process.ts'

const PREFIX = 'osb_backup_agent_'
/** Seconds: scripts take from milliseconds (a lock) to hours (a dump). */
const STAGE_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600]

export class AgentMetrics implements JobObserver {
  readonly #registry = new Registry()
  readonly #loop: EventLoopMetrics
  readonly #started
  readonly #finished
  readonly #stageSeconds
  readonly #bytes
  readonly #transferSeconds
  readonly #failures
  readonly #reclaimedObjects
  readonly #reclaimedBytes
  readonly #gcFailures

  constructor(jobs: Pick<JobRegistry, 'liveJobs'>) {
    const r = this.#registry
    registerProcessMetrics(r, PREFIX)
    this.#loop = new EventLoopMetrics(r, PREFIX)
    this.#started = r.counter(`${PREFIX}jobs_started_total`, 'Jobs started, by kind', ['kind'])
    this.#finished = r.counter(`${PREFIX}jobs_finished_total`, 'Jobs finished, by kind and final status', ['kind', 'status'])
    const running = r.gauge(`${PREFIX}jobs_running`, 'Jobs running now, by kind', ['kind'])
    r.onScrape(() => {
      const live = jobs.liveJobs()
      for (const kind of KINDS) running.set({ kind }, live.filter((e) => e.kind === kind).length)
      // a job whose end was never reported (a bug) must not keep the sampler waking the agent
      if (live.length === 0) this.#loop.noJobRuns()
    })
    this.#stageSeconds = r.histogram(
      `${PREFIX}stage_duration_seconds`,
      'Time per stage, by kind, stage and outcome (ok or failed)',
      ['kind', 'stage', 'outcome'],
      STAGE_BUCKETS,
    )
    this.#bytes = r.counter(`${PREFIX}transfer_bytes_total`, 'Bytes moved by finished transfers, by storage backend and direction', [
      'backend',
      'direction',
    ])
    this.#transferSeconds = r.histogram(
      `${PREFIX}transfer_duration_seconds`,
      'Time of finished transfers, by storage backend and direction',
      ['backend', 'direction'],
      STAGE_BUCKETS,
    )
    this.#failures = r.counter(
      `${PREFIX}job_failures_total`,
      'Failed jobs by kind and reason (cancelled, timeout, script, storage, setup, interrupted by an agent restart)',
      ['kind', 'reason'],
    )
    this.#reclaimedObjects = r.counter(
      `${PREFIX}storage_reclaimed_objects_total`,
      'Objects the storage clean-up after backups removed, by storage backend',
      ['backend'],
    )
    this.#reclaimedBytes = r.counter(
      `${PREFIX}storage_reclaimed_bytes_total`,
      'Bytes the storage clean-up after backups removed, by storage backend',
      ['backend'],
    )
    this.#gcFailures = r.counter(
      `${PREFIX}storage_gc_failures_total`,
      'Storage clean-up passes that had problems (the backups still succeeded), by storage backend',
      ['backend'],
    )
  }

  /** The Prometheus text exposition of every metric. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: CONTENT_TYPE, text: await this.#registry.render() }
  }

  jobStarted(job: Job): void {
    this.#started.inc({ kind: job.kind })
    this.#loop.jobStarted()
  }

  stageFinished(job: Job, stage: Stage, seconds: number, error: JobError | undefined): void {
    this.#stageSeconds.observe({ kind: job.kind, stage: stage.name, outcome: error ? 'failed' : 'ok' }, seconds)
    if (stage.kind !== 'transfer' || error) return
    const labels = { backend: job.request.destination.type.toLowerCase(), direction: stage.name === 'upload' ? 'upload' : 'download' }
    this.#bytes.inc(labels, job.filesize)
    this.#transferSeconds.observe(labels, seconds)
  }

  /** A job a killed agent left RUNNING, marked FAILED at this start. */
  jobInterrupted(kind: Job['kind']): void {
    this.#finished.inc({ kind, status: 'FAILED' })
    this.#failures.inc({ kind, reason: 'interrupted' })
  }

  jobFinished(job: Job, reason: FailureReason | undefined): void {
    this.#finished.inc({ kind: job.kind, status: job.status })
    if (reason) this.#failures.inc({ kind: job.kind, reason })
    this.#loop.jobFinished()
  }

  storageCollected(job: Job, objects: number, bytes: number, failed: boolean): void {
    const labels = { backend: job.request.destination.type.toLowerCase() }
    this.#reclaimedObjects.inc(labels, objects)
    this.#reclaimedBytes.inc(labels, bytes)
    if (failed) this.#gcFailures.inc(labels)
  }

  /** True while the event-loop delay is sampled (a job runs): an idle agent runs no timer. */
  get samplingEventLoop(): boolean {
    return this.#loop.sampling
  }
}
