// Runs one lifecycle script: `bash <script> args…`, never through a shell command line, stdin
// empty, in its own session and process group so that everything it started can be stopped
// together. Started by a small helper process (spawner.ts) where Perl is there, else by Node.
import { spawn } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { JobError } from '../errors.ts'
import { TailCapture } from './capture.ts'
import { scriptProblem } from './safety.ts'
import { groupAlive, processStartTime, signalGroup } from './process-group.ts'
import { scriptHelperEnabled, spawnThroughHelper, type HelperExit, type SpawnRequest } from './spawner.ts'

export interface ScriptRun {
  /** Stage name, also the script's file name (`<stage>` or `<stage>.sh`). */
  stage: string
  scriptsPath: string
  args: readonly string[]
  cwd: string
  env: Record<string, string>
  /** Values masked in the captured output. */
  secrets: readonly string[]
  logMaxBytes: number
  /** Aborting stops the script's whole process group; the reason becomes the failure message. */
  signal?: AbortSignal
  /** The script is stopped the same way after this long (0: no limit). */
  timeoutMs?: number
  /**
   * Called with the script's pid (= its process group id) before it can act. `held`: it waits
   * before exec until this returns (the helper's child); else it runs already (Node's spawn).
   */
  onSpawn?: (pid: number, held: boolean, startTime: string | undefined) => void
  /** A held script was let go and runs now (exec'd): its pid is no longer a held child's. */
  onRunning?: () => void
}

export interface ScriptResult {
  stdout: string
  stderr: string
  /** Set when the script did not exit with 0; the captured output is still there. */
  failure: JobError | undefined
}

/** Between SIGTERM and SIGKILL when the agent stops a script. */
export const KILL_GRACE_MS = 10_000
/** How long output may still arrive after the script exited (the helper's DRAIN in spawner.ts). */
const PIPE_DRAIN_MS = 500

const timedOut = (stage: string, ms: number) => `${stage} timed out after ${Math.round(ms / 1000)} s`

/**
 * One limit for a whole stage: aborted by `cancel` or once `timeoutMs` passed (0: no limit), with
 * the failure message as its reason. Given to the script and to whatever the stage still waits for
 * after the script exited (a stream, docs/INTEGRITY.md). clear() when the stage is over.
 */
export function stageLimit(
  stage: string,
  cancel: AbortSignal | undefined,
  timeoutMs: number,
): { signal: AbortSignal | undefined; clear: () => void } {
  if (!timeoutMs) return { signal: cancel, clear: () => {} }
  const deadline = new AbortController()
  const timer = setTimeout(() => deadline.abort(timedOut(stage, timeoutMs)), timeoutMs)
  return { signal: cancel ? AbortSignal.any([cancel, deadline.signal]) : deadline.signal, clear: () => clearTimeout(timer) }
}

/** The stage's script in scripts_path: `<stage>`, else `<stage>.sh`. Synchronous, see safety.ts. */
export function findScript(scriptsPath: string, stage: string): string {
  for (const name of [stage, `${stage}.sh`]) {
    const path = join(scriptsPath, name)
    let isFile = false
    try {
      isFile = statSync(path, { throwIfNoEntry: false })?.isFile() === true
    } catch {
      // missing or unreadable: try the next name
    }
    if (isFile) return path
  }
  throw new JobError(`no ${stage} script: neither ${stage} nor ${stage}.sh exists in ${scriptsPath} (scripts_path)`)
}

export async function runScript(run: ScriptRun): Promise<ScriptResult> {
  const script = findScript(run.scriptsPath, run.stage)
  const unsafe = scriptProblem(script)
  if (unsafe) throw new JobError(unsafe)
  const stdout = new TailCapture(run.logMaxBytes, run.secrets)
  const stderr = new TailCapture(run.logMaxBytes, run.secrets)

  const started = await startScript({
    argv: ['bash', script, ...run.args],
    cwd: run.cwd,
    env: run.env,
    onStdout: (chunk) => stdout.push(chunk),
    onStderr: (chunk) => stderr.push(chunk),
    onRunning: () => run.onRunning?.(),
  })
  const { pid } = started
  // Recorded before the script may run (through the helper, it waits for go()).
  if (pid !== undefined) run.onSpawn?.(pid, started.held, started.startTime ?? processStartTime(pid))
  started.go()
  let stoppedBecause: string | undefined
  let killTimer: NodeJS.Timeout | undefined
  const stop = (reason: string) => {
    if (stoppedBecause !== undefined || pid === undefined) return
    stoppedBecause = reason
    signalScript(pid, 'SIGTERM')
    killTimer = setTimeout(() => signalScript(pid, 'SIGKILL'), KILL_GRACE_MS)
  }
  const onAbort = () => stop(String(run.signal?.reason ?? 'cancelled'))
  run.signal?.addEventListener('abort', onAbort, { once: true })
  if (run.signal?.aborted) onAbort()
  const timeout = run.timeoutMs ? setTimeout(() => stop(timedOut(run.stage, run.timeoutMs as number)), run.timeoutMs) : undefined
  const exit = await started.exited
  run.signal?.removeEventListener('abort', onAbort)
  clearTimeout(timeout)
  clearTimeout(killTimer)

  let failure: JobError | undefined
  if (exit.unreported) failure = new JobError(`${run.stage} script's end was not reported: ${exit.error?.message}`)
  else if (exit.error) failure = new JobError(`${run.stage} script could not be started: ${startProblem(exit.error, run.cwd)}`)
  else if (stoppedBecause !== undefined) failure = new JobError(stoppedBecause)
  else if (exit.signal) failure = new JobError(`${run.stage} script was killed by ${exit.signal}`)
  else if (exit.code !== 0) failure = new JobError(`${run.stage} script failed with exit code ${exit.code}`)
  return { stdout: stdout.text(), stderr: stderr.text(), failure }
}

/**
 * The script's group; a child the helper has just forked may not have made its group yet
 * (setsid is its first step), so the process itself then.
 */
function signalScript(pid: number, signal: NodeJS.Signals): void {
  if (groupAlive(pid)) signalGroup(pid, signal)
  else signalProcess(pid, signal)
}

function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // gone
  }
}

interface StartedScript {
  /** Its pid (= its process group id once it runs); undefined when it could not be started. */
  pid: number | undefined
  /** It waits before exec until go() (the helper's child, src/scripts/held.ts). */
  held: boolean
  /** Its /proc start time when already known. */
  startTime?: string | undefined
  /** Lets it run: call once its pid is recorded. */
  go: () => void
  /** Resolves once it exited and its output was read (or the drain time was over). */
  exited: Promise<HelperExit>
}

/**
 * Starts the script in its own session and process group: through the small helper process
 * (spawner.ts: no fork of the agent) where Perl is there, else with Node's spawn.
 */
async function startScript(request: SpawnRequest): Promise<StartedScript> {
  if (!scriptHelperEnabled()) return spawnHere(request)
  try {
    return await spawnThroughHelper(request)
  } catch (error) {
    return { pid: undefined, held: false, go: () => {}, exited: Promise.resolve({ code: null, signal: null, error: error as Error }) }
  }
}

/** Node's own spawn: fork() of the whole agent; the script runs at once (go() does nothing). */
function spawnHere(request: SpawnRequest): StartedScript {
  const [command, ...args] = request.argv as [string, ...string[]]
  const child = spawn(command, args, {
    cwd: request.cwd,
    env: request.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: a kill reaches the children the script started
  })
  child.stdout.on('data', request.onStdout)
  child.stderr.on('data', request.onStderr)
  const exited = new Promise<HelperExit>((resolve) => {
    child.on('error', (error) => resolve({ code: null, signal: null, error }))
    // 'close' also waits for stdout/stderr to end, so the capture is complete. A process the
    // script left in the background (a lock holder, say) may keep the pipes open: it is left
    // running, as scripts expect, and its later output is not captured.
    child.on('close', (code, signal) => resolve({ code, signal }))
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout.destroy()
        child.stderr.destroy()
        resolve({ code, signal })
      }, PIPE_DRAIN_MS).unref()
    })
  })
  return { pid: child.pid, held: false, go: () => {}, exited }
}

/** Node reports a working directory that is missing or not a directory as `spawn bash ENOENT`. */
function startProblem(error: Error, cwd: string): string {
  let isDirectory = false
  try {
    isDirectory = statSync(cwd).isDirectory()
  } catch {
    // missing, or a dangling link
  }
  return isDirectory ? error.message : `its working directory ${cwd} is missing or not a directory (${error.message})`
}
