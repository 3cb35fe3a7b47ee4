// Walks a job's stage table: the first failure skips the remaining main stages, cleanup runs once
// the main stage has started, unlock runs whenever lock was attempted. Every change is published
// to the registry, so polls see it; nothing thrown here escapes as a crash.
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import { JobError } from '../errors.ts'
import { scriptEnvironment } from '../scripts/environment.ts'
import { storageFor, type Storage } from '../storage/storage.ts'
import { utcFileStamp } from '../util/time.ts'
import { prepareJobDirectory } from './directory.ts'
import type { Job } from './job.ts'
import type { JobRegistry } from './registry.ts'
import { requestSecrets } from './request.ts'
import { STAGES, type Stage, type StageContext, type StageKind } from './stages.ts'

export interface RunnerDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  /** The agent's own environment, source of the passthrough variables. */
  agentEnv: Record<string, string | undefined>
  /** The job_group setting, resolved at start; undefined: the agent's own group. */
  jobGid?: number | undefined
}

/** Characters allowed in a generated file name; everything else becomes `_`. */
const UNSAFE_NAME_CHARS = /[^A-Za-z0-9._-]/g

export function generatedFileBase(host: string, database: string, now: Date): string {
  return `${utcFileStamp(now)}_${host.replace(UNSAFE_NAME_CHARS, '_')}_${database.replace(UNSAFE_NAME_CHARS, '_')}`
}

export async function runJob(job: Job, deps: RunnerDeps): Promise<void> {
  const { config, registry } = deps
  const log = deps.log.child({ job: job.id, kind: job.kind })
  const request = job.request
  const directory = join(job.kind === 'backup' ? config.directoryBackup : config.directoryRestore, job.id)
  let storage: Storage | undefined
  const ctx: StageContext = {
    job,
    directory,
    fileBase: generatedFileBase(request.database.host, request.database.database, job.startedAt),
    scriptsPath: config.scriptsPath,
    scriptEnv: scriptEnvironment(request, config.scriptEnvPassthrough, deps.agentEnv),
    secrets: requestSecrets(request),
    logMaxBytes: config.scriptLogMaxBytes,
    allowedToDeleteFiles: config.allowedToDeleteFiles,
    scriptSecretArgs: config.scriptSecretArgs,
    jobGid: deps.jobGid,
    storage: () => (storage ??= storageFor(request.destination, config)),
    signal: new AbortController().signal,
  }
  if (job.kind === 'restore') job.filename = request.destination.filename

  let failure: JobError | undefined
  try {
    await prepareJobDirectory(directory, { empty: job.kind === 'backup', gid: deps.jobGid })
    failure = await runStages(STAGES[job.kind], ctx, (stage) => {
      job.state = stage.name
      registry.publish(job)
      log.info({ stage: stage.name }, 'stage started')
    }, (stage, error) => {
      registry.publish(job)
      if (error) log.warn({ stage: stage.name, error: error.message }, 'stage failed')
      else log.info({ stage: stage.name }, 'stage finished')
    })
  } catch (error) {
    failure = asJobError(error)
  }

  job.endedAt = new Date()
  job.state = 'finished'
  job.status = failure ? 'FAILED' : 'SUCCEEDED'
  job.errorMessage = failure?.message ?? ''
  registry.finish(job)
  log.info({ status: job.status, ms: job.endedAt.getTime() - job.startedAt.getTime(), error: failure?.message }, 'job finished')
}

async function runStages(
  table: readonly Stage[],
  ctx: StageContext,
  entered: (stage: Stage) => void,
  left: (stage: Stage, error: JobError | undefined) => void,
): Promise<JobError | undefined> {
  let failure: JobError | undefined
  const attempted = new Set<StageKind>()
  for (const stage of table) {
    if (stage.applies && !stage.applies(ctx.job)) continue
    if (!shouldRun(stage, failure, attempted)) continue
    attempted.add(stage.kind)
    entered(stage)
    let error: JobError | undefined
    try {
      await stage.run(ctx)
    } catch (thrown) {
      error = asJobError(thrown, stage.name)
      failure ??= error
    }
    left(stage, error)
  }
  return failure
}

function shouldRun(stage: Stage, failure: JobError | undefined, attempted: ReadonlySet<StageKind>): boolean {
  switch (stage.runIf) {
    case 'ok':
      return failure === undefined
    case 'mainStarted':
      return attempted.has('main') || attempted.has('transfer')
    case 'lockAttempted':
      return attempted.has('lock')
  }
}

function asJobError(error: unknown, stage?: string): JobError {
  if (error instanceof JobError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new JobError(stage ? `${stage} failed: ${message}` : message, { cause: error })
}
