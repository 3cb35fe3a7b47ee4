// Process groups of lifecycle scripts: each script runs in its own group, so stopping it stops
// everything it started. A group outlives a killed agent; the recorded pid and start time let a
// restarted agent find it again without ever signalling a recycled pid.
import { readFileSync } from 'node:fs'

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

function groupAlive(pid: number): boolean {
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
