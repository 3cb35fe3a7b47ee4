// Refuses scripts that someone other than their owner could have changed. The agent runs them as
// root, so a script that is group- or world-writable, or that sits in a directory where others
// can create, rename or delete entries, is a way for any local user to run commands as root.
//
// Every directory from the script up to / is checked (as OpenSSH's StrictModes does): a writable
// parent lets its writers swap the whole scripts directory. A sticky directory such as /tmp is
// fine: others may add entries there, but not rename or delete ours. Both the script's own path
// and its target (when it is a symlink) are checked.
import type { Stats } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import { dirname } from 'node:path'

const GROUP_OR_OTHER_WRITE = 0o022
const STICKY = 0o1000

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`

/**
 * Why the script at `path` must not be run, or undefined when it is safe.
 *
 * The checks are the same as one stat after the other would make, in the same order (the first
 * problem found is the one reported, a failed stat throws as before), but the file system calls
 * run concurrently: the two realpaths together, then the script and every directory together.
 * Each call is a thread-pool round trip, and this runs before every lifecycle script, so eleven
 * round trips one after the other were a measurable part of a job's fixed cost (docs/PERFORMANCE.md).
 */
export async function scriptProblem(path: string): Promise<string | undefined> {
  let target: string
  let scriptsDir: string
  try {
    ;[target, scriptsDir] = await Promise.all([realpath(path), realpath(dirname(path))])
  } catch (error) {
    return `cannot resolve ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`
  }
  const dirs: string[] = []
  for (const start of [dirname(target), scriptsDir]) {
    for (let dir = start; !dirs.includes(dir); dir = dirname(dir)) dirs.push(dir)
  }
  const [file, ...infos] = await Promise.allSettled([stat(target), ...dirs.map((dir) => stat(dir))])
  const mode = (result: PromiseSettledResult<Stats> | undefined): number => {
    if (result?.status !== 'fulfilled') throw result?.reason
    return result.value.mode
  }
  const fileMode = mode(file)
  if ((fileMode & GROUP_OR_OTHER_WRITE) !== 0) {
    return `refusing to run ${path}: it is writable by its group or by others (mode ${octal(fileMode)}); remove that with chmod go-w`
  }
  for (const [i, dir] of dirs.entries()) {
    const dirMode = mode(infos[i])
    if ((dirMode & GROUP_OR_OTHER_WRITE) !== 0 && (dirMode & STICKY) === 0) {
      return `refusing to run ${path}: the directory ${dir} is writable by its group or by others and not sticky (mode ${octal(dirMode)}), so they could replace the script; remove that with chmod go-w`
    }
  }
  return undefined
}
