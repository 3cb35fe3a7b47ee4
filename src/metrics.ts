// Prometheus metrics (GET /metrics): jobs started and finished, running jobs, stage durations,
// bytes and transfer time by storage backend, failures by reason, plus the process's own
// (memory, CPU, event-loop lag). A registry of its own, so tests and embedders get no globals.
//
// prom-client is loaded on the first job or scrape, not at start-up (it costs about 70 ms and
// 20 MB there): what happens before it is ready is queued and replayed, so nothing is lost. The
// process metrics start counting from then.
import type { Counter, Histogram, Registry } from 'prom-client'
import type { JobError } from './errors.ts'
import type { Job } from './jobs/job.ts'
import type { FailureReason, JobObserver } from './jobs/observer.ts'
import type { JobRegistry } from './jobs/registry.ts'
import type { JobKind } from './jobs/request.ts'
import type { Stage } from './jobs/stages.ts'

const PREFIX = 'osb_backup_agent_'
/** Seconds: scripts take from milliseconds (a lock) to hours (a dump). */
const STAGE_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600]

type Prom = typeof import('prom-client')

export class AgentMetrics implements JobObserver {
  readonly #jobs: Pick<JobRegistry, 'liveJobs'>
  #loading: Promise<PromMetrics> | undefined
  #loaded: PromMetrics | undefined
  readonly #queued: ((m: PromMetrics) => void)[] = []

  constructor(jobs: Pick<JobRegistry, 'liveJobs'>) {
    this.#jobs = jobs
  }

  /** The Prometheus text exposition of every metric. */
  async render(): Promise<{ contentType: string; text: string }> {
    const { registry } = await this.#load()
    return { contentType: registry.contentType, text: await registry.metrics() }
  }

  /** Loads the metrics library ahead of the first job or scrape. */
  preload(): Promise<unknown> {
    return this.#load()
  }

  #load(): Promise<PromMetrics> {
    this.#loading ??= import('prom-client').then((prom) => {
      const metrics = new PromMetrics(prom, this.#jobs)
      for (const update of this.#queued.splice(0)) update(metrics)
      this.#loaded = metrics
      return metrics
    })
    return this.#loading
  }

  #update(update: (m: PromMetrics) => void): void {
    if (this.#loaded) return update(this.#loaded)
    this.#queued.push(update)
    void this.#load()
  }

  // Labels and values are taken now: a queued update runs later, when the job has moved on.
  jobStarted(job: Job): void {
    const { kind } = job
    this.#update((m) => m.started.inc({ kind }))
  }

  stageFinished(job: Job, stage: Stage, seconds: number, error: JobError | undefined): void {
    const labels = { kind: job.kind, stage: stage.name, outcome: error ? 'failed' : 'ok' }
    const transfer = stage.kind === 'transfer' && !error
      ? { labels: { backend: job.request.destination.type.toLowerCase(), direction: job.kind === 'backup' ? 'upload' : 'download' }, bytes: job.filesize }
      : undefined
    this.#update((m) => {
      m.stageSeconds.observe(labels, seconds)
      if (!transfer) return
      m.bytes.inc(transfer.labels, transfer.bytes)
      m.transferSeconds.observe(transfer.labels, seconds)
    })
  }

  /** A job a killed agent left RUNNING, marked FAILED at this start. */
  jobInterrupted(kind: JobKind): void {
    this.#update((m) => {
      m.finished.inc({ kind, status: 'FAILED' })
      m.failures.inc({ kind, reason: 'interrupted' })
    })
  }

  jobFinished(job: Job, reason: FailureReason | undefined): void {
    const { kind, status } = job
    this.#update((m) => {
      m.finished.inc({ kind, status })
      if (reason) m.failures.inc({ kind, reason })
    })
  }
}

/** The metrics themselves, created once prom-client is loaded. */
class PromMetrics {
  readonly registry: Registry
  readonly started: Counter<'kind'>
  readonly finished: Counter<'kind' | 'status'>
  readonly stageSeconds: Histogram<'kind' | 'stage' | 'outcome'>
  readonly bytes: Counter<'backend' | 'direction'>
  readonly transferSeconds: Histogram<'backend' | 'direction'>
  readonly failures: Counter<'kind' | 'reason'>

  constructor({ Counter, Gauge, Histogram, Registry, collectDefaultMetrics }: Prom, jobs: Pick<JobRegistry, 'liveJobs'>) {
    this.registry = new Registry()
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX })
    this.started = new Counter({ name: `${PREFIX}jobs_started_total`, help: 'Jobs started, by kind', labelNames: ['kind'], registers })
    this.finished = new Counter({ name: `${PREFIX}jobs_finished_total`, help: 'Jobs finished, by kind and final status', labelNames: ['kind', 'status'], registers })
    new Gauge({
      name: `${PREFIX}jobs_running`,
      help: 'Jobs running now, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        const live = jobs.liveJobs()
        for (const kind of ['backup', 'restore'] as const) this.set({ kind }, live.filter((e) => e.kind === kind).length)
      },
    })
    this.stageSeconds = new Histogram({
      name: `${PREFIX}stage_duration_seconds`,
      help: 'Time per stage, by kind, stage and outcome (ok or failed)',
      labelNames: ['kind', 'stage', 'outcome'],
      buckets: STAGE_BUCKETS,
      registers,
    })
    this.bytes = new Counter({ name: `${PREFIX}transfer_bytes_total`, help: 'Bytes moved by finished transfers, by storage backend and direction', labelNames: ['backend', 'direction'], registers })
    this.transferSeconds = new Histogram({
      name: `${PREFIX}transfer_duration_seconds`,
      help: 'Time of finished transfers, by storage backend and direction',
      labelNames: ['backend', 'direction'],
      buckets: STAGE_BUCKETS,
      registers,
    })
    this.failures = new Counter({
      name: `${PREFIX}job_failures_total`,
      help: 'Failed jobs by kind and reason (cancelled, timeout, script, storage, setup, interrupted by an agent restart)',
      labelNames: ['kind', 'reason'],
      registers,
    })
  }
}
