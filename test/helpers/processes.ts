// Processes a test looks for, and the agent configuration the in-process job tests share.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, type Config } from '../../src/config.ts'
import { HELD_TITLE, HELPER_TITLE } from '../../src/scripts/held.ts'
import { isZombie } from '../../src/scripts/process-group.ts'

/**
 * Live children of `parent` that are the script helper, known by its title. While it forks a
 * spare the helper carries the held title for an instant (so the child has it from its first
 * one): a child of `parent` with that title is the helper too, since held children are the
 * helper's, never the agent's.
 */
export function helperChildren(parent = process.pid): number[] {
  const isHelper = (cmdline: string) => cmdline.startsWith(HELPER_TITLE) || cmdline.startsWith(HELD_TITLE)
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        return ppid === parent && isHelper(readFileSync(`/proc/${p}/cmdline`, 'utf8')) && !isZombie(Number(p))
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
