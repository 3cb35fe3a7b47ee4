// A script the helper (spawner.ts) has forked but not yet let run: it waits before exec for the
// agent's `go`, which comes only once its pid is stored. Such a child carries a process title of
// its own, so that a restarted agent that finds a recorded pid alive can tell a child that never
// ran its script (the agent was killed between the store write and `go`, and the helper has not
// ended yet) from one that runs it (docs/DURABILITY.md).
import { closeSync, openSync, readSync } from 'node:fs'

/**
 * The held child's /proc/<pid>/cmdline begins with this, then the stage name. The helper sets it
 * as its own `$0` just before the fork (and back after), so the child has it from its first
 * instant: there is no moment in which a held child has another command line.
 */
export const HELD_TITLE = 'osb-backup-agent: held script'
/** The helper's own title (its /proc/<pid>/comm is the first 15 bytes, "osb-backup-agen"). */
export const HELPER_TITLE = 'osb-backup-agent: script helper'

/**
 * Whether `pid` is a held child: its command line is the title above. A script that runs has
 * bash's command line instead (exec replaced it), and exec is the only way out of the hold.
 * Reads at most a few bytes: a command line can be megabytes long.
 */
export function isHeldScript(pid: number): boolean {
  const title = Buffer.from(`${HELD_TITLE} `)
  let fd: number | undefined
  try {
    fd = openSync(`/proc/${pid}/cmdline`, 'r')
    const head = Buffer.alloc(title.length)
    const n = readSync(fd, head, 0, head.length, 0)
    return n === title.length && head.equals(title)
  } catch {
    return false // gone
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
