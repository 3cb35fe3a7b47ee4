// Tells when directory_state, or the store's files in it, may have been removed, moved or
// replaced, so that the registry checks its store (JobRegistry.checkStore) without polling.
//
// A stat of the store every 2 s woke the idle agent 15 times in 30 s. Instead, inotify (fs.watch,
// no thread and no timer) watches the folder (its entries created, removed or renamed, or the
// folder itself) and its parent (the entry of the folder's name: removed, renamed, a symlink put
// there). What they cannot see is left to a check every BACKSTOP_MS: a folder higher up the path
// replaced, a network filesystem changed from another host, a watch refused (inotify's limits).
// Every write checks the store first in any case (JobRegistry.#flush); the watch only closes the
// window in which nothing is written and a crash would lose the records.
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'

/** After the first change, the check waits this long: a burst (`rm -r`, a move then a symlink) has settled by then. */
export const SETTLE_MS = 1000
/** For what the watches cannot see; one wake-up a minute. */
export const BACKSTOP_MS = 60_000

export interface StoreWatch {
  close(): void
}

export function watchStoreDirectory(
  directory: string,
  check: () => void,
  options: { settleMs?: number; backstopMs?: number } = {},
): StoreWatch {
  const { settleMs = SETTLE_MS, backstopMs = BACKSTOP_MS } = options
  const name = basename(directory)
  let watchers: FSWatcher[] = []
  let due: NodeJS.Timeout | undefined
  let closed = false

  const checkNow = () => {
    clearTimeout(due)
    due = undefined
    try {
      check()
    } finally {
      arm()
    }
  }
  // Not postponed by later events: changes that never stop must not stop the checks.
  const changed = () => {
    if (!closed && due === undefined) due = setTimeout(checkNow, settleMs).unref()
  }
  const add = (path: string, relevant: (event: string, file: string | null) => boolean) => {
    try {
      // not persistent: the watches never keep the process alive
      const watcher = watch(path, { persistent: false }, (event, file) => {
        if (relevant(event, file)) changed()
      })
      watcher.on('error', changed) // the watched folder is gone: check, and watch what is there now
      watchers.push(watcher)
    } catch {
      // not there now (removed, not created yet): the parent's watch or the backstop sees it come
    }
  }
  // Watches are made again after every check: the path may lead to another folder now.
  function arm(): void {
    for (const watcher of watchers) watcher.close()
    watchers = []
    if (closed) return
    // 'rename' is an entry created, removed or renamed, or the folder itself; 'change' (a write) is not
    add(directory, (event) => event === 'rename')
    add(dirname(directory), (_event, file) => file === null || file === name)
  }

  arm()
  const backstop = setInterval(checkNow, backstopMs).unref()
  return {
    close() {
      closed = true
      clearTimeout(due)
      clearInterval(backstop)
      arm()
    },
  }
}
