// Recovery at start: jobs a killed agent left RUNNING become FAILED at once ("interrupted by
// agent restart during <stage>"); then, in the background, the agent stops the script group the
// dead agent left running, removes a partial upload or download, and runs the cleanup and unlock
// scripts the job still owes, recording their output in the job's log fields. Nothing stays
// locked.
//
// A step is owed until it has run: its script was started and exited (any status), or it is
// missing. The steps still owed are stored with the job after each one, so a crash during
// recovery resumes at the next start with what is left (a finished job with a non-empty
// `pending` list). A step interrupted by the crash runs again: owed steps run at least once.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../log.ts'
import type { Config } from '../config.ts'
import { JobError } from '../errors.ts'
import { maskSecrets } from '../scripts/capture.ts'
import { passthroughSecrets, scriptEnvironment } from '../scripts/environment.ts'
import { isHeldScript } from '../scripts/held.ts'
import { groupAlive, isZombie, processStartTime, signalGroup, stopGroup, waitForGroupExit } from '../scripts/process-group.ts'
import { KILL_GRACE_MS } from '../scripts/run.ts'
import { storageFor } from '../storage/storage-for.ts'
import { jobDirectoryPath, recreateMissingJobDirectory, removeInterruptedDownloads } from './directory.ts'
import { pollingBody, type Job, type JobStatus, type RecordedScript } from './job.ts'
import { bootId, readRecord, recoveryRecord, type RecoveryRecord } from './recovery-record.ts'
import { STORAGE_GC_LOG } from './storage-hygiene.ts'
import type { JobRegistry } from './registry.ts'
import type { JobKind } from './request.ts'
import { requestSecrets } from './request.ts'
import type { StageContext } from './stage-context.ts'
import { shouldRun, STAGES } from './stages.ts'
import type { StoredJob } from './store.ts'

export interface RecoveryDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  agentEnv: Record<string, string | undefined>
  jobGid?: number | undefined
}

interface Interrupted {
  job: Job
  record: RecoveryRecord
  pending: string[]
}

/** Rebuilds the job from its stored polling body and recovery record. */
function restoreJob(row: StoredJob, record: RecoveryRecord): Job {
  const body = JSON.parse(row.body) as Record<string, unknown>
  const logs: Record<string, string> = {}
  for (const [key, value] of Object.entries(body)) if (/_(log|errorlog)$/.test(key)) logs[key] = String(value)
  return {
    kind: row.kind,
    id: row.id,
    request: record.request,
    status: row.status,
    state: String(body.state),
    errorMessage: typeof body.error_message === 'string' ? body.error_message : '',
    startedAt: new Date(row.startedAt),
    endedAt: row.endedAt === null ? undefined : new Date(row.endedAt),
    filename: String(body.filename ?? ''),
    filesize: Number((body.filesize as { size?: number } | undefined)?.size ?? 0),
    logs,
    attempted: record.attempted,
    uploading: record.uploading,
    attempts: Number(body.attempts ?? 0),
    script: record.script,
    checksum: (body.checksum as { value?: string } | undefined)?.value,
    checksumVerified: typeof body.checksum_verified === 'boolean' ? body.checksum_verified : undefined,
    progress: undefined,
    streamed: false,
    streamRestore: false,
    reclaimed: body.storage_reclaimed as Job['reclaimed'],
    verification: body.verification as Job['verification'],
  }
}

/**
 * Never throws: a store that cannot be written keeps the row in memory (JobRegistry), and
 * recovery goes on with the next step. If the agent dies before the row is written, the steps
 * since the last written row run again at the next start (at least once).
 */
function save(registry: JobRegistry, job: Job, pending: string[]): void {
  registry.replace({
    kind: job.kind,
    id: job.id,
    status: job.status,
    body: JSON.stringify(pollingBody(job)),
    record: JSON.stringify(recoveryRecord(job, pending)),
    startedAt: job.startedAt.getTime(),
    endedAt: job.endedAt?.getTime() ?? null,
  })
}

/**
 * The recovery steps a stored job still owes, in order.
 *
 * A job a killed agent left RUNNING owes:
 * - 'orphan': the script group it recorded, which may still run (not after a reboot);
 * - 'abandon': the partial upload it recorded;
 * - each cleanup or unlock stage the stage rules make due (as after a failure) that has not run.
 *   Stages run one after another, so every entered stage but the last has run. The last one
 *   (the stage it was in) has run only if its recorded script exits: 'orphan' settles that.
 *
 * A finished job whose recovery was interrupted keeps the list its recovery stored, with
 * 'orphan' when recovery had a script running.
 */
export function stepsStillDue(kind: JobKind, status: JobStatus, record: RecoveryRecord, sameBoot: boolean): string[] {
  const orphan = record.script && sameBoot ? ['orphan'] : []
  if (status !== 'RUNNING') return [...orphan, ...(record.pending ?? []).filter((step) => step !== 'orphan')]
  if (record.stagesDone) return [] // the backup was complete; only its storage clean-up was cut off
  const table = STAGES[kind]
  const entered = record.attempted
  const kinds = new Set(table.filter((s) => entered.includes(s.name)).map((s) => s.kind))
  const unfinished = (name: string) => !entered.includes(name) || name === entered.at(-1)
  const stages = table.filter((s) => s.runIf !== 'ok' && shouldRun(s, true, kinds) && unfinished(s.name)).map((s) => s.name)
  return [...orphan, ...(record.uploading ? ['abandon'] : []), ...stages]
}

/** Whether a record was written in this boot (unknown counts as this one: a process crash). */
function writtenThisBoot(record: RecoveryRecord): boolean {
  const now = bootId()
  return record.boot === undefined || now === undefined || record.boot === now
}

/**
 * Phase one, before the server listens: every interrupted job reads FAILED from the first poll.
 * Returns the jobs with recovery work left: those a killed agent left RUNNING and those whose
 * recovery a second crash interrupted.
 */
export function markInterrupted(rows: readonly StoredJob[], registry: JobRegistry, now = new Date()): Interrupted[] {
  const out: Interrupted[] = []
  for (const row of rows) {
    const stored = readRecord(row.record)
    const sameBoot = writtenThisBoot(stored)
    // A script of another boot died with it; its pid may belong to anything now.
    const record = sameBoot ? stored : { ...stored, script: undefined }
    const job = restoreJob(row, record)
    const pending = stepsStillDue(row.kind, row.status, stored, sameBoot)
    if (row.status === 'RUNNING') endInterrupted(job, record, now)
    save(registry, job, pending)
    if (pending.length > 0) out.push({ job, record, pending })
  }
  return out
}

/**
 * A job the agent left RUNNING ends here: FAILED, unless every stage had passed and only the
 * storage clean-up after a backup was going (the next backup's pass goes on with it).
 */
function endInterrupted(job: Job, record: RecoveryRecord, now: Date): void {
  job.state = 'finished'
  job.endedAt = now
  if (record.stagesDone) {
    job.status = 'SUCCEEDED'
    job.logs[STORAGE_GC_LOG] = 'storage clean-up interrupted by agent restart; the next backup goes on with it\n'
    return
  }
  job.status = 'FAILED'
  job.errorMessage = `interrupted by agent restart during ${record.state}`
}

/** Phase two, in the background once the server listens. Never throws. */
export async function finishRecovery(interrupted: readonly Interrupted[], deps: RecoveryDeps): Promise<void> {
  for (const item of interrupted) {
    const log = deps.log.child({ job: item.job.id, kind: item.job.kind })
    try {
      await recoverOne(item, deps, log)
    } catch (error) {
      log.error({ error: maskSecrets((error as Error).message, requestSecrets(item.job.request)) }, 'recovery failed')
    }
  }
}

/** One job's recovery as it goes: the steps still owed and what went wrong so far. */
interface RecoveryRun {
  job: Job
  todo: string[]
  /** Marks a step as run and stores what is still owed. */
  done: (step: string) => void
  problems: string[]
  log: Logger
}

async function recoverOne({ job, record, pending }: Interrupted, deps: RecoveryDeps, log: Logger): Promise<void> {
  const { config, registry } = deps
  const todo = [...pending]
  const done = (step: string) => {
    todo.splice(todo.indexOf(step), 1)
    save(registry, job, todo)
  }
  const run: RecoveryRun = { job, todo, done, problems: [], log }
  log.info({ steps: pending }, 'recovering interrupted job')

  await stopOrphanAndAbandonUpload(run, record, config)
  const directory = jobDirectoryPath(job, config)
  if (job.attempted.includes('download')) {
    try {
      await removeInterruptedDownloads(directory)
    } catch (error) {
      run.problems.push(`the interrupted download could not be removed: ${(error as Error).message}`)
    }
  }
  const ctx = recoveryContext(job, directory, deps, () => save(registry, job, todo))
  await runOwedStages(run, ctx, deps.jobGid)
  if (run.problems.length > 0) {
    // a storage server's answer may quote what it was sent
    job.errorMessage += `; during recovery: ${maskSecrets(run.problems.join('; '), ctx.secrets)}`
    save(registry, job, todo)
  }
  log.info({ problems: run.problems.length }, 'recovery finished')
}

async function stopOrphanAndAbandonUpload(
  { job, todo, done, problems, log }: RecoveryRun,
  record: RecoveryRecord,
  config: Config,
): Promise<void> {
  if (todo.includes('orphan')) {
    // Its script has exited now (on its own, or stopped at the hook timeout): a cleanup or
    // unlock stage it belonged to has run. A held child never ran: its stage stays owed.
    if (record.script && (await stopOrphan(record.script, config, log)) === 'ran') {
      const stage = todo.indexOf(record.script.stage)
      if (stage >= 0) todo.splice(stage, 1)
    }
    job.script = undefined
    done('orphan')
  }
  if (todo.includes('abandon') && record.uploading) {
    try {
      await storageFor(record.request.destination, config).abandon?.(record.uploading)
    } catch (error) {
      problems.push(`the partial upload of ${record.uploading} could not be removed: ${(error as Error).message}`)
    }
    job.uploading = undefined
    done('abandon')
  }
}

/** A stage context for the owed cleanup and unlock scripts: no storage, nothing written in the job directory. */
function recoveryContext(job: Job, directory: string, deps: RecoveryDeps, changed: () => void): StageContext {
  const { config } = deps
  return {
    job,
    directory,
    pinnedDirectory: () => {
      throw new JobError('the agent writes nothing in a job directory during recovery')
    },
    scriptDirectory: () => directory,
    fileBase: '',
    scriptsPath: config.scriptsPath,
    scriptEnv: scriptEnvironment(job.request, config.scriptEnvPassthrough, deps.agentEnv),
    secrets: [...requestSecrets(job.request), ...passthroughSecrets(config.scriptEnvPassthrough, deps.agentEnv)],
    logMaxBytes: config.scriptLogMaxBytes,
    allowedToDeleteFiles: false,
    requireChecksum: false,
    verifyAfterUpload: false,
    recordedBackups: () => [],
    scriptSecretArgs: config.scriptSecretArgs,
    jobGid: deps.jobGid,
    storage: () => {
      throw new JobError('no storage during recovery')
    },
    signal: undefined,
    scriptTimeoutMs: config.scriptTimeoutSeconds * 1000,
    hookTimeoutMs: config.hookTimeoutSeconds * 1000,
    changed,
    transferOptions: () => ({}),
    streamCompression: config.streamCompression,
  }
}

async function runOwedStages(
  { job, todo, done, problems, log }: RecoveryRun,
  ctx: StageContext,
  jobGid: number | undefined,
): Promise<void> {
  for (const stage of STAGES[job.kind]) {
    if (!todo.includes(stage.name)) continue
    if (!job.attempted.includes(stage.name)) job.attempted.push(stage.name)
    recreateMissingJobDirectory(ctx.directory, jobGid)
    // Until done() below the stage is stored as owed: a crash while it runs leaves it owed (its
    // script, if recorded, is waited for at the next start).
    try {
      await stage.run(ctx)
      log.info({ stage: stage.name }, 'recovery stage finished')
    } catch (error) {
      const message = maskSecrets((error as Error).message, ctx.secrets)
      problems.push(message)
      log.warn({ stage: stage.name, error: message }, 'recovery stage failed')
    }
    done(stage.name)
  }
}

/**
 * A script group the killed agent left running: a lock, check, backup or restore script is
 * stopped (its job is over); a cleanup or unlock script is allowed to finish its work, within
 * the hook timeout. A group that is gone (in this boot) has exited.
 *
 * A backup or restore script that had exited while the agent waited for its stream is still
 * recorded (src/jobs/script-stages.ts): what is left of its group (a process holding the stream) is
 * stopped too. Its pid is then no process's, yet the group lives: the kernel does not hand out a
 * pid that is still a process group's id, so that group is the script's.
 */
const MAIN_STAGES = new Set(['backup', 'restore'])

async function stopOrphan(script: RecordedScript, config: Config, log: Logger): Promise<'ran' | 'never ran'> {
  // A zombie has exited (its parent, the helper, died; init has not reaped it yet).
  const started = isZombie(script.pid) ? undefined : processStartTime(script.pid)
  if (started === undefined && MAIN_STAGES.has(script.stage) && groupAlive(script.pid)) {
    log.warn({ stage: script.stage, group: script.pid }, 'stopping what the interrupted script left in its process group')
    await stopGroup(script.pid, KILL_GRACE_MS)
    return 'ran'
  }
  // Gone, or the pid was reused: it exited. Recorded as held, it was not seen to run: a held
  // child that never got its go exits without running (or died with the agent, killed with its
  // whole unit); one that did and already exited is run again (at least once).
  if (started !== script.startTime) return script.held ? 'never ran' : 'ran'
  if (isHeldScript(script.pid)) {
    log.warn({ stage: script.stage, pid: script.pid }, 'removing the interrupted script that was never let run; its stage runs again')
    await killHeld(script)
    return 'never ran'
  }
  const finishing = /cleanup|unlock/.test(script.stage)
  log.warn({ stage: script.stage, pid: script.pid }, finishing ? 'waiting for the interrupted script' : 'stopping the interrupted script')
  if (finishing && (await waitForGroupExit(script.pid, config.hookTimeoutSeconds * 1000))) return 'ran'
  await stopGroup(script.pid, KILL_GRACE_MS)
  return 'ran'
}

/**
 * A held child still there: its helper has not ended yet (it would, on the dead agent's closed
 * pipe, and the child with it), so a `go` the agent wrote just before it died might still come.
 * SIGKILL, then until it is gone, so that it never runs beside the stage's new run; its group
 * too, in case that go came between the look and the kill (the stage, owed, runs again: at least
 * once). The start time was checked just before: the pid is the child's.
 */
async function killHeld(script: RecordedScript): Promise<void> {
  signalGroup(script.pid, 'SIGKILL')
  try {
    process.kill(script.pid, 'SIGKILL')
  } catch {
    // gone
  }
  const deadline = Date.now() + KILL_GRACE_MS
  while (processStartTime(script.pid) === script.startTime && !isZombie(script.pid) && Date.now() < deadline) await sleep(20)
}
