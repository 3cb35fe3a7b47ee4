// Walks a job's stage table: the first failure skips the remaining main stages, cleanup runs once
// the main stage has started, unlock runs whenever lock was attempted. Every change is published
// to the registry, so polls see it; nothing thrown here escapes as a crash. A store that cannot
// be written changes no stage: the job runs on and ends FAILED, its message naming the store.
import type { Logger } from '../log.ts'
import type { Config } from '../config.ts'
import { JobError } from '../errors.ts'
import { maskSecrets } from '../scripts/capture.ts'
import { passthroughSecrets, scriptEnvironment } from '../scripts/environment.ts'
import type { Storage } from '../storage/storage.ts'
import { storageFor } from '../storage/storage-for.ts'
import { jobDirectoryPath, prepareJobDirectory, recreateMissingJobDirectory, type JobDirectory } from './directory.ts'
import { generatedFileBase } from './file-base.ts'
import type { Job } from './job.ts'
import { failureReason, type FailureReason, type JobObserver } from './observer.ts'
import type { JobRegistry } from './registry.ts'
import { requestSecrets } from './request.ts'
import { collectStorageGarbage, needsHygiene } from './storage-hygiene.ts'
import { isStreamedObject } from '../integrity/format.ts'
import { restoreScriptStreams } from './streaming.ts'
import { transferOptions } from './transfer.ts'
import type { TransferMemory } from '../util/idle-memory.ts'
import type { Stage, StageContext } from './stage-context.ts'
import { STAGES, shouldRun, type StageKind } from './stages.ts'

export interface RunnerDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  /** The agent's own environment, source of the passthrough variables. */
  agentEnv: Record<string, string | undefined>
  /** Told about every job and stage (metrics). */
  observer?: JobObserver | undefined
  /** The job_group setting, resolved at start; undefined: the agent's own group. */
  jobGid?: number | undefined
  /** Told of each transfer's bytes as they move and of the end of a stage that moved data (collections). */
  transferMemory?: TransferMemory | undefined
}

/**
 * Runs a job the registry has started (JobRegistry.start) to its end. `cancel` is the job's
 * cancel signal, from the registry's entry for it; `table` is the kind's stages (a test passes
 * stages with fake bodies).
 */
export async function runJob(job: Job, cancel: AbortSignal, deps: RunnerDeps, table: readonly Stage[] = STAGES[job.kind]): Promise<void> {
  const { config, registry } = deps
  const log = deps.log.child({ job: job.id, kind: job.kind })
  const directory = jobDirectoryPath(job, config)
  // Set when a write of this job's record failed: a crash then would have lost its state.
  let storeProblem: string | undefined
  const publish = () => {
    if (!registry.publish(job)) storeProblem ??= registry.storeProblem ?? UNWRITTEN
  }
  // Set once the job directory is prepared (and held open) below.
  let held: JobDirectory | undefined
  // Set by a stage that asks for transfer options (it moves data through storage), cleared as it ends.
  const transfers = { moved: false }
  const ctx = jobStageContext(job, directory, cancel, deps, publish, () => held, transfers)
  if (job.kind === 'restore') await prepareRestore(job, config)

  deps.observer?.jobStarted(job)
  let failure: JobError | undefined
  const outcome: { reason?: FailureReason } = {}
  try {
    // A verify job runs no script and writes nothing: it has no job directory.
    if (job.kind !== 'verify') {
      held = await prepareJobDirectory(directory, {
        existing: job.kind === 'backup' || config.allowedToDeleteFiles ? 'empty' : 'refuse',
        gid: deps.jobGid,
      })
    }
    failure = await runStages(table, ctx, cancel, stageEvents(job, ctx, cancel, deps, log, publish, outcome, transfers))
    // After unlock: the database is free while the pass runs; it never fails the job.
    if (failure === undefined && !cancel.aborted && needsHygiene(job)) {
      // stored before the pass: an agent killed during it leaves a complete backup, nothing owed
      job.stagesDone = true
      publish()
      await collectStorageGarbage(ctx, cancel, {
        graceHours: config.storageGcGraceHours,
        log,
        observer: deps.observer,
        uploadingNow: (object) => registry.uploadingNow(object),
      })
    }
  } catch (error) {
    failure = asJobError(error)
  } finally {
    held?.close()
  }
  if (failure && outcome.reason === undefined) outcome.reason = failureReason(undefined, failure, cancel.aborted)
  finishJob(job, failure, outcome.reason, storeProblem, ctx.secrets, deps, log)
}

/** The context the stages share; the storage client is made on first use. */
function jobStageContext(
  job: Job,
  directory: string,
  cancel: AbortSignal,
  deps: RunnerDeps,
  publish: () => void,
  held: () => JobDirectory | undefined,
  transfers: { moved: boolean },
): StageContext {
  const { config } = deps
  const request = job.request
  let storage: Storage | undefined
  const ctx: StageContext = {
    job,
    directory,
    pinnedDirectory: () => {
      const prepared = held()
      if (prepared === undefined) throw new JobError(`the job directory ${directory} was not prepared`)
      return prepared.pinned()
    },
    scriptDirectory: (finishing) => held()?.scriptDirectory(finishing) ?? directory,
    fileBase: generatedFileBase(request.database.host, request.database.database, job.startedAt),
    scriptsPath: config.scriptsPath,
    scriptEnv: scriptEnvironment(request, config.scriptEnvPassthrough, deps.agentEnv),
    secrets: [...requestSecrets(request), ...passthroughSecrets(config.scriptEnvPassthrough, deps.agentEnv)],
    logMaxBytes: config.scriptLogMaxBytes,
    allowedToDeleteFiles: config.allowedToDeleteFiles,
    requireChecksum: config.requireChecksum,
    verifyAfterUpload: config.verifyAfterUpload,
    recordedBackups: (filename) => deps.registry.backupsOf(filename),
    scriptSecretArgs: config.scriptSecretArgs,
    jobGid: deps.jobGid,
    storage: () => (storage ??= storageFor(request.destination, config)),
    signal: cancel,
    scriptTimeoutMs: config.scriptTimeoutSeconds * 1000,
    hookTimeoutMs: config.hookTimeoutSeconds * 1000,
    changed: publish,
    transferOptions: (total) => {
      transfers.moved = true
      return transferOptions(job, ctx.changed, ctx.signal, total, deps.transferMemory?.during())
    },
    streamCompression: config.streamCompression,
  }
  return ctx
}

/** A restore's file name, and whether its script reads the object as a stream. */
async function prepareRestore(job: Job, config: Config): Promise<void> {
  const request = job.request
  job.filename = request.destination.filename
  job.streamRestore =
    !request.destination.skipStorage && isStreamedObject(request.destination.filename) && (await restoreScriptStreams(config.scriptsPath))
}

/** What the runner does as each stage starts and ends: state, logs, metrics, the job's first failure reason. */
function stageEvents(
  job: Job,
  ctx: StageContext,
  cancel: AbortSignal,
  deps: RunnerDeps,
  log: Logger,
  publish: () => void,
  outcome: { reason?: FailureReason },
  transfers: { moved: boolean },
): StageEvents {
  const { observer } = deps
  let stageStarted = 0
  return {
    entered(stage) {
      job.state = stage.name
      job.attempted.push(stage.name)
      if (!stage.recordsItsStart?.()) publish()
      if (stage.kind === 'cleanup' || stage.kind === 'unlock') recreateMissingJobDirectory(ctx.directory, deps.jobGid)
      log.info({ stage: stage.name }, 'stage started')
      stageStarted = performance.now()
    },
    left(stage, error) {
      // No publish here: the next stage's entered() (or registry.finish) publishes in the same
      // synchronous run, before any poll or other I/O callback can run, and that write holds
      // everything this one would have (the logs, the script record cleared). The store never
      // misses a state a poll could have seen; one SQLite write and serialisation per stage less.
      if (error) log.warn({ stage: stage.name, error: maskSecrets(error.message, ctx.secrets) }, 'stage failed')
      else log.info({ stage: stage.name }, 'stage finished')
      observer?.stageFinished(job, stage, (performance.now() - stageStarted) / 1000, error)
      // the first failure is the job's reason
      if (error && outcome.reason === undefined) outcome.reason = failureReason(stage, error, cancel.aborted)
      if (transfers.moved) {
        transfers.moved = false
        deps.transferMemory?.ended()
      }
    },
  }
}

/** Ends the job: its final status stored (or, when the store fails, at least in memory), observed and logged. */
function finishJob(
  job: Job,
  failure: JobError | undefined,
  reason: FailureReason | undefined,
  storeProblem: string | undefined,
  secrets: readonly string[],
  deps: RunnerDeps,
  log: Logger,
): void {
  const { config, registry } = deps
  job.endedAt = new Date()
  job.state = 'finished'
  storeProblem ??= registry.storeProblem
  endJob(job, failure, storeProblem, secrets)
  if (!registry.finish(job) && storeProblem === undefined) {
    // The final write itself failed: the job still ends FAILED in memory, as polls see it.
    endJob(job, failure, registry.storeProblem ?? UNWRITTEN, secrets)
    registry.publish(job)
  }
  if (job.status === 'FAILED') reason ??= 'setup'
  deps.observer?.jobFinished(job, job.status === 'FAILED' ? reason : undefined)
  log.info(
    { status: job.status, ms: job.endedAt.getTime() - job.startedAt.getTime(), error: job.errorMessage || undefined },
    'job finished',
  )
  // Beyond max_job_records the oldest go now; by age, hourly (main.ts): the store's query for
  // them cost as much as a no-op job's script starts, and the count is known without it.
  if (registry.size > config.maxJobRecords) registry.prune(Date.now(), config.jobRetentionDays * 86_400_000, config.maxJobRecords)
}

const UNWRITTEN = 'the job store could not be written'

/**
 * The final status and message: any failure, then the store's problem, fail the job. A message
 * may quote what a script or a server said; it goes to polls and logs masked.
 */
function endJob(job: Job, failure: JobError | undefined, storeProblem: string | undefined, secrets: readonly string[]): void {
  const problems = [failure?.message, storeProblem].filter((p) => p !== undefined && p !== '')
  job.status = problems.length > 0 ? 'FAILED' : 'SUCCEEDED'
  job.errorMessage = maskSecrets(problems.join('; '), secrets)
}

export interface StageEvents {
  entered: (stage: Stage) => void
  left: (stage: Stage, error: JobError | undefined) => void
}

/**
 * Walks the table: which stages run, in order, given what failed and what was cancelled; the
 * job's first failure, if any. Told about each stage it enters and leaves.
 */
export async function runStages(
  table: readonly Stage[],
  ctx: StageContext,
  cancel: AbortSignal,
  events: StageEvents,
): Promise<JobError | undefined> {
  let failure: JobError | undefined
  const attempted = new Set<StageKind>()
  for (const stage of table) {
    if (stage.applies && !stage.applies(ctx.job, ctx)) continue
    // A cancel between stages stops the main line; cleanup and unlock still run below.
    if (cancel.aborted && failure === undefined) failure = new JobError(String(cancel.reason))
    if (!shouldRun(stage, failure !== undefined, attempted)) continue
    attempted.add(stage.kind)
    // Cleanup and unlock must run to the end even for a cancelled job (bounded by their timeout).
    ctx.signal = stage.runIf === 'ok' ? cancel : undefined
    events.entered(stage)
    let error: JobError | undefined
    try {
      await stage.run(ctx)
    } catch (thrown) {
      error = asJobError(thrown, stage.name)
      failure ??= error
    }
    events.left(stage, error)
  }
  return failure
}

function asJobError(error: unknown, stage?: string): JobError {
  if (error instanceof JobError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new JobError(stage ? `${stage} failed: ${message}` : message, { cause: error })
}
