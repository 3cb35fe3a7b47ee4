// How a stream ends once its script has exited (BACKUP_STREAM, RESTORE_STREAM; docs/INTEGRITY.md).
//
// A script may leave a process behind that still holds the pipe: `(sleep 1000 >"$BACKUP_STREAM") &`,
// or a daemon that inherited the descriptor. The end of the stream then never comes, and the
// job would wait for it forever. So, after the script exited:
// - the agent waits up to STREAM_GRACE_MS for the stream to end (the backup's end-of-file; the
//   restore's transfer into the pipe to finish or its reader to close);
// - then the processes other than the agent that still hold the pipe (found by its device and
//   inode in /proc) are the reason: those in the stage's process group are stopped (SIGTERM,
//   SIGKILL after HOLDER_KILL_GRACE_MS), the stream is given up whoever holds it, and the stage
//   fails with a message that names them;
// - when nobody holds it any more, what is left is the agent's own work (draining the pipe, the
//   last parts of an upload): waited for, like everything else, only until the stage's timeout
//   or cancel.
// - a stream that ended while a process the script left still has the pipe open (it holds
//   BACKUP_STREAM for reading, or a restore still reads what the pipe holds, the script having
//   exited 0 without waiting for it) is not over either: the agent waits, within the same grace,
//   for those processes of the stage's group to close it, then stops them and fails the stage.
//   Only the group is looked at here (one kill(2) when it is gone, the usual case): a /proc scan
//   costs ~150 ms.
// A stream that does not end cleanly (the script failed, or the stage timed out or was cancelled)
// is given up at once, and its holders in the group are stopped too.
import { JobError } from '../errors.ts'
import { groupAlive, processesHolding, stopProcesses, type FileIdentity, type Holder } from '../scripts/process-group.ts'

/** How long a stream may stay open after its script exited. */
export const STREAM_GRACE_MS = 5_000
/** Between SIGTERM and SIGKILL for a process that still holds a stream. */
export const HOLDER_KILL_GRACE_MS = 2_000

/** What a stream learns when its script has exited. */
export interface ScriptExit {
  scriptSucceeded: boolean
  /** The script's process group (its pid), when it started. */
  group: number | undefined
  /** The whole stage's timeout and cancel: they end a wait for the stream too. */
  stage: AbortSignal | undefined
}

export interface StreamSide {
  what: 'backup' | 'restore'
  variable: 'BACKUP_STREAM' | 'RESTORE_STREAM'
  pipe: FileIdentity
  /** Settles (either way) when the stream needs nothing more from the script's side. */
  settled: Promise<unknown>
  /** Called when nobody holds the pipe past the grace, before the rest is waited for. */
  whenUnheld?: () => void
  /**
   * Gives up on the stream (`reason` is the stage's failure). Called before any holder is
   * stopped: the end of the stream a killed writer leaves must not complete a cut backup.
   */
  giveUp: (reason: string) => void
}

type Outcome = 'settled' | 'grace' | 'aborted'

/**
 * Applies the rules above. Returns the stage's failure when the stream was given up while the
 * script had succeeded (held past the grace, timed out, cancelled); undefined otherwise.
 */
export async function streamAfterScript(side: StreamSide, exit: ScriptExit): Promise<JobError | undefined> {
  let done = false
  const settled = side.settled.then(
    () => (done = true),
    () => (done = true),
  )
  let failure: JobError | undefined
  if (exit.scriptSucceeded) {
    const graceEnds = Date.now() + STREAM_GRACE_MS
    let outcome = await firstOf(settled, exit.stage, STREAM_GRACE_MS)
    if (outcome === 'settled') {
      const holders = await groupStillHolding(side.pipe, exit.group, graceEnds, exit.stage)
      if (holders.length === 0) return undefined
      const held = new JobError(heldMessage(side, holders, exit.group, 'after its end'))
      side.giveUp(held.message)
      await stopHolders(side.pipe, holders, exit.group)
      return held
    }
    if (outcome === 'grace') {
      const holders = await processesHolding(side.pipe)
      if (holders.length > 0) {
        const held = new JobError(heldMessage(side, holders, exit.group))
        side.giveUp(held.message)
        await stopHolders(side.pipe, holders, exit.group)
        return held
      }
      side.whenUnheld?.()
      outcome = await firstOf(settled, exit.stage, undefined)
    }
    if (outcome === 'settled') return undefined
    failure = new JobError(String(exit.stage?.reason ?? 'cancelled'))
  }
  const endedCleanly = done // before giving up: that settles the stream too
  side.giveUp(failure?.message ?? `the ${side.what} script failed`)
  if (!endedCleanly) await stopHolders(side.pipe, await processesHolding(side.pipe), exit.group)
  return failure
}

const HOLDER_POLL_MS = 100

/**
 * The processes of `group` that still hold the pipe once its stream ended, waited for until
 * `deadline` (they may be closing it: a reader that just got the end). None when the group is gone.
 */
async function groupStillHolding(
  pipe: FileIdentity,
  group: number | undefined,
  deadline: number,
  stage: AbortSignal | undefined,
): Promise<Holder[]> {
  for (;;) {
    if (group === undefined || !groupAlive(group)) return []
    const holders = (await processesHolding(pipe)).filter((h) => h.group === group)
    if (holders.length === 0 || Date.now() >= deadline || stage?.aborted) return holders
    await new Promise((resolve) => setTimeout(resolve, HOLDER_POLL_MS))
  }
}

/** Rounds of stopping holders: a holder that keeps starting children (each inheriting the pipe) leaves new ones behind the first. */
const STOP_ROUNDS = 4

/**
 * Stops the holders in the script's group, then looks again (until none is left, or
 * STOP_ROUNDS): children started while the first ones were being stopped hold the pipe too.
 */
async function stopHolders(pipe: FileIdentity, holders: readonly Holder[], group: number | undefined): Promise<void> {
  if (group === undefined) return
  let found = holders
  for (let round = 0; round < STOP_ROUNDS; round++) {
    const inGroup = found.filter((h) => h.group === group)
    if (inGroup.length === 0) return
    await stopProcesses(inGroup, HOLDER_KILL_GRACE_MS)
    if (!groupAlive(group)) return
    found = await processesHolding(pipe)
  }
}

/** Which comes first: the stream settling, the stage aborting, or `ms` passing (undefined: never). */
function firstOf(settled: Promise<unknown>, stage: AbortSignal | undefined, ms: number | undefined): Promise<Outcome> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const finish = (outcome: Outcome) => {
      clearTimeout(timer)
      stage?.removeEventListener('abort', onAbort)
      resolve(outcome)
    }
    const onAbort = () => finish('aborted')
    settled.then(() => finish('settled'))
    if (stage?.aborted) return queueMicrotask(onAbort) // a stream that settled already still wins
    stage?.addEventListener('abort', onAbort, { once: true })
    if (ms !== undefined) timer = setTimeout(() => finish('grace'), ms)
  })
}

/** At most this many pids are named in a message (a holder that keeps forking leaves hundreds). */
const NAMED_PIDS = 10
const pids = (list: readonly number[]) =>
  `${list.length === 1 ? 'pid' : 'pids'} ${list.slice(0, NAMED_PIDS).join(', ')}${list.length > NAMED_PIDS ? ` and ${list.length - NAMED_PIDS} more` : ''}`
const processes = (count: number) => (count === 1 ? 'a process' : 'processes')

/** E.g. "the backup script exited but a process it started (pid 4242) kept BACKUP_STREAM open for 5 s; it was stopped and the backup is incomplete". */
export function heldMessage(
  side: Pick<StreamSide, 'what' | 'variable'>,
  holders: readonly Holder[],
  group: number | undefined,
  when: 'after the grace' | 'after its end' = 'after the grace',
): string {
  const started = holders.filter((h) => group !== undefined && h.group === group).map((h) => h.pid)
  const outside = holders.filter((h) => group === undefined || h.group !== group).map((h) => h.pid)
  const who = [
    started.length > 0 ? `${processes(started.length)} it started (${pids(started)})` : '',
    outside.length > 0 ? `${processes(outside.length)} outside its process group (${pids(outside)})` : '',
  ].filter((s) => s !== '')
  const done =
    outside.length === 0
      ? `${started.length === 1 ? 'it was' : 'they were'} stopped`
      : `${started.length > 0 ? `${started.length === 1 ? 'the one' : 'those'} it started ${started.length === 1 ? 'was' : 'were'} stopped, ` : ''}the agent gave up on the stream (it does not signal a process outside the script's group)`
  if (when === 'after its end') {
    return `the ${side.what} script exited but ${who.join(' and ')} still had ${side.variable} open ${STREAM_GRACE_MS / 1000} s later, after the stream had ended (a process reading it?); ${done} and the ${side.what} may be incomplete`
  }
  return `the ${side.what} script exited but ${who.join(' and ')} kept ${side.variable} open for ${STREAM_GRACE_MS / 1000} s; ${done} and the ${side.what} is incomplete`
}
