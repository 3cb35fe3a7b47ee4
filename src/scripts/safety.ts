// Refuses scripts that someone other than their owner could have changed. The agent runs them as
// root, so a script that is group- or world-writable, or that sits in a directory where others
// can create, rename or delete entries, is a way for any local user to run commands as root.
//
// Every directory from the script up to / is checked (as OpenSSH's StrictModes does): a writable
// parent lets its writers swap the whole scripts directory. A sticky directory such as /tmp is
// fine: others may add entries there, but not rename or delete ours. Both the script's own path
// and its target (when it is a symlink) are checked.
//
// The checks are synchronous on purpose. They are a dozen metadata calls (realpath, stat) on the
// scripts directory and its parents, microseconds each once the inodes are cached, and the spawn()
// they guard blocks the event loop for far longer (fork and exec). Through the thread pool each
// call was a round trip (a wake-up of a worker, then of the main thread), one after the other,
// before every script: ~1-2 ms apiece on a busy machine, the largest part of a job's fixed cost
// after the processes themselves (docs/PERFORMANCE.md, job overhead).
import { realpathSync, statSync } from 'node:fs'
import { dirname } from 'node:path'

const GROUP_OR_OTHER_WRITE = 0o022
const STICKY = 0o1000

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/** Why the script at `path` must not be run, or undefined when it is safe. */
export function scriptProblem(path: string): string | undefined {
  let target: string
  let scriptsDir: string
  try {
    target = realpathSync.native(path)
    scriptsDir = realpathSync.native(dirname(path))
  } catch (error) {
    return `cannot resolve ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`
  }
  const file = statSync(target)
  if ((file.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    return `refusing to run ${path}: it is writable by its group or by others (mode ${octal(file.mode)}); remove that with chmod go-w`
  }
  const checked = new Set<string>()
  for (const start of [dirname(target), scriptsDir]) {
    for (let dir = start; !checked.has(dir); dir = dirname(dir)) {
      checked.add(dir)
      const info = statSync(dir)
      if ((info.mode & GROUP_OR_OTHER_WRITE) !== 0 && (info.mode & STICKY) === 0) {
        return `refusing to run ${path}: the directory ${dir} is writable by its group or by others and not sticky (mode ${octal(info.mode)}), so they could replace the script; remove that with chmod go-w`
      }
    }
  }
  return undefined
}
