// Processes a test looks for, and the agent configuration the in-process job tests share.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, type Config } from '../../src/config.ts'
import { HELPER_TITLE } from '../../src/scripts/held.ts'
import { isZombie } from '../../src/scripts/process-group.ts'

/** Live children of `parent` that are the script helper (its title). */
export function helperChildren(parent = process.pid): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        return ppid === parent && readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith(HELPER_TITLE) && !isZombie(Number(p))
      } catch {
        return false
      }
    })
    .map(Number)
}

/** The settings of an agent whose folders are under `root` (backup b, restore r, scripts, state). */
export function configUnder(root: string, more: Record<string, string> = {}): Config {
  return loadConfig({
    client_username: 'u',
    client_password: 'p',
    directory_backup: join(root, 'b'),
    directory_restore: join(root, 'r'),
    scripts_path: join(root, 'scripts'),
    ...more,
  }).config
}
