// What the runner tells whoever watches jobs (the metrics, src/metrics.ts). The job engine knows
// nothing of Prometheus; it reports events with the job and the stage.
import type { JobError } from '../errors.ts'
import type { Job } from './job.ts'
import type { Stage } from './stage-context.ts'

/** Why a job failed, in few enough kinds to be a metric label. */
export type FailureReason = 'cancelled' | 'timeout' | 'script' | 'storage' | 'setup'

export interface JobObserver {
  jobStarted(job: Job): void
  stageFinished(job: Job, stage: Stage, seconds: number, error: JobError | undefined): void
  jobFinished(job: Job, reason: FailureReason | undefined): void
  /** The storage hygiene pass after a backup (storage-hygiene.ts): what it reclaimed, and whether it had problems. */
  storageCollected?(job: Job, objects: number, bytes: number, failed: boolean): void
}

export function failureReason(stage: Stage | undefined, error: JobError, cancelled: boolean): FailureReason {
  if (cancelled) return 'cancelled'
  if (!stage) return 'setup'
  if (stage.kind === 'transfer') return 'storage'
  return / timed out after /.test(error.message) ? 'timeout' : 'script'
}
