// Process groups of lifecycle scripts: each script runs in its own group, so stopping it stops
// everything it started. A group outlives a killed agent; the recorded pid and start time let a
// restarted agent find it again without ever signalling a recycled pid. The processes that hold
// a file open (a stream a script left behind) are found by the file's identity in /proc.
import { readFileSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined if gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // the group is already gone
  }
}

export function groupAlive(pid: number): boolean {
  if (pid <= 1) return false // kill(-1) would mean every process
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

/** Waits until the group is gone or `ms` passed; true when it is gone. */
export async function waitForGroupExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (groupAlive(pid)) {
    if (Date.now() >= deadline) return false
    await new Promise((r) => setTimeout(r, 100))
  }
  return true
}

/** SIGTERM to the group, SIGKILL after the grace period if anything is left. */
export async function stopGroup(pid: number, graceMs: number): Promise<void> {
  signalGroup(pid, 'SIGTERM')
  if (!(await waitForGroupExit(pid, graceMs))) signalGroup(pid, 'SIGKILL')
}

/** Field 5 of /proc/<pid>/stat (the process group id), or undefined if gone. */
export function processGroupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
  } catch {
    return undefined
  }
}

/** A file by identity (device and inode), not by name: a name can be replaced or removed. */
export interface FileIdentity {
  dev: number
  ino: number
}

export interface Holder {
  pid: number
  /** Its process group. */
  group: number
  /** processStartTime, so that a recycled pid is never signalled. */
  startTime: string
}

/**
 * The processes other than the agent that have `file` open: every /proc/<pid>/fd/* whose target
 * (stat follows the link, even to a removed name) is that device and inode. Processes that end
 * while they are looked at are skipped.
 */
export async function processesHolding(file: FileIdentity): Promise<Holder[]> {
  const holders: Holder[] = []
  for (const entry of await readdir('/proc').catch(() => [])) {
    if (!/^[0-9]+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [])
    for (const fd of fds) {
      const info = await stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined)
      if (info?.dev !== file.dev || info.ino !== file.ino) continue
      const group = processGroupOf(pid)
      const startTime = processStartTime(pid)
      if (group !== undefined && startTime !== undefined) holders.push({ pid, group, startTime })
      break
    }
  }
  return holders
}

const stillRunning = (p: Holder) => processStartTime(p.pid) === p.startTime && !isZombie(p.pid)

/** Exited, not yet reaped by its parent. */
export function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

function signalProcess(p: Holder, signal: NodeJS.Signals): void {
  if (!stillRunning(p)) return
  try {
    process.kill(p.pid, signal)
  } catch {
    // gone meanwhile
  }
}

/** SIGTERM to each process, SIGKILL to those still running after `graceMs`; waits (briefly) until they are gone. */
export async function stopProcesses(processes: readonly Holder[], graceMs: number): Promise<void> {
  for (const p of processes) signalProcess(p, 'SIGTERM')
  const gone = async (ms: number) => {
    const deadline = Date.now() + ms
    while (processes.some(stillRunning)) {
      if (Date.now() >= deadline) return false
      await new Promise((r) => setTimeout(r, 50))
    }
    return true
  }
  if (await gone(graceMs)) return
  for (const p of processes) signalProcess(p, 'SIGKILL')
  await gone(1000)
}
