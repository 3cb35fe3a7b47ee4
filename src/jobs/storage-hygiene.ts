// Storage hygiene after a successful backup (issue 17): the backend removes what earlier uploads
// left behind (Storage.collectGarbage). It runs once every stage has passed, so the database is
// already unlocked, and never changes the job's outcome: it is bounded (STORAGE_GC_MAX_PAGES,
// STORAGE_GC_MAX_SECONDS), a cancel stops it, and whatever goes wrong is reported in the polling
// body's `storage_gc_log` and in the metrics, never as a failure.
import { STORAGE_GC_MAX_PAGES, STORAGE_GC_MAX_SECONDS } from '../config.ts'
import type { Logger } from '../log.ts'
import { maskSecrets } from '../scripts/capture.ts'
import type { Reclaimed } from '../storage/storage.ts'
import type { Job } from './job.ts'
import type { JobObserver } from './observer.ts'
import type { StageContext } from './stage-context.ts'

/** The polling body's field with the pass's summary (a `*_log` field, which the manager keeps). */
export const STORAGE_GC_LOG = 'storage_gc_log'

export interface HygieneDeps {
  graceHours: number
  log: Logger
  observer?: JobObserver | undefined
  /** Whether a running job uploads an object of this name now (JobRegistry.uploadingNow). */
  uploadingNow?: (object: string) => boolean
  /** The bounds; the documented constants unless a test gives others. */
  maxPages?: number
  maxSeconds?: number
}

/** Whether a finished job gets the pass: a backup that used the storage. */
export const needsHygiene = (job: Job) => job.kind === 'backup' && !job.request.destination.skipStorage

/** Runs the pass for a backup whose stages all passed; never throws. */
export async function collectStorageGarbage(ctx: StageContext, cancel: AbortSignal, deps: HygieneDeps): Promise<void> {
  const { job } = ctx
  const maxMs = (deps.maxSeconds ?? STORAGE_GC_MAX_SECONDS) * 1000
  let reclaimed: Reclaimed
  try {
    const collected = await ctx.storage().collectGarbage?.({
      graceMs: deps.graceHours * 3_600_000,
      maxPages: deps.maxPages ?? STORAGE_GC_MAX_PAGES,
      deadline: Date.now() + maxMs,
      // A request in flight at the deadline is cut off there too.
      signal: AbortSignal.any([cancel, AbortSignal.timeout(maxMs)]),
      uploadingNow: deps.uploadingNow,
    })
    reclaimed = collected ?? { objects: 0, bytes: 0, problems: [] }
  } catch (error) {
    reclaimed = { objects: 0, bytes: 0, problems: [error instanceof Error ? error.message : String(error)] }
  }
  const problems = reclaimed.problems.map((p) => maskSecrets(p, ctx.secrets))
  job.reclaimed = { objects: reclaimed.objects, bytes: reclaimed.bytes }
  job.logs[STORAGE_GC_LOG] = hygieneSummary(ctx.storage().location, reclaimed, problems)
  deps.observer?.storageCollected?.(job, reclaimed.objects, reclaimed.bytes, problems.length > 0)
  const fields = { objects: reclaimed.objects, bytes: reclaimed.bytes, problems: problems.length > 0 ? problems : undefined }
  if (problems.length > 0) deps.log.warn(fields, 'storage clean-up had problems; the backup is not affected')
  else deps.log.info(fields, 'storage clean-up finished')
  ctx.changed()
}

/** One or two lines for the polling body. */
export function hygieneSummary(location: string, reclaimed: Reclaimed, problems: readonly string[]): string {
  const done = `storage clean-up of ${location}: reclaimed ${reclaimed.objects} objects, ${reclaimed.bytes} bytes`
  return problems.length === 0 ? `${done}\n` : `${done}\nproblems (the backup is not affected): ${problems.join('; ')}\n`
}
