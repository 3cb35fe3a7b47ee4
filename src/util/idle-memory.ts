// Memory back to the VM once the agent has nothing to do, and after each transfer. A job leaves
// V8's old generation full of its garbage (its objects outlive the 2 MB young generation), and V8
// collects and hands pages back only when its memory reducer notices a low allocation rate: 8 s
// after the first look, and the launcher delays that look to 60 s (it woke an idle agent up). So
// a second after the last running job ends, one full collection that compacts the heap and
// releases its free pages (V8's "last resort" flavour; --expose-gc in bin/osb-backup-agent).
// Measured, release build, 250 no-op jobs: RSS 86 -> 75 MB; a few ms, once per busy spell.
// A transfer's part buffers (3 x 5 MiB in flight while streaming) are garbage once it ends, but
// nothing made V8 collect them while the job went on, and freed they stayed in glibc's heap for
// good. So a stage that moved data is followed by the same collection, and blocks of 4 MiB and
// more are mapped on their own (MALLOC_MMAP_THRESHOLD_ in bin/osb-backup-agent): freed, they
// leave RSS. Measured, release build, a streamed 1 GiB backup to S3: the main process after the
// upload 89.9 -> 75.1 MB, the idle agent after the job 91.6 -> 78.8 MB (docs/PERFORMANCE.md).
// After each of these collections glibc's free memory between blocks still in use goes back to
// the kernel too (malloc_trim, libexec/malloc-trim.node): freed, it stayed resident for good
// (1000 jobs: 6-9 MB of the agent's RSS; docs/PERFORMANCE.md).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { INSTALL_ROOT } from '../install-root.ts'

const RELEASE_DELAY_MS = 1_000
const COLLECT_EVERY_BYTES = 512 * 1024 * 1024
const TRIM_DELAY_MS = 100
/** The addon tools/build-native.sh builds; an installation without it does without the trim. */
export const MALLOC_TRIM_ADDON = fileURLToPath(new URL('libexec/malloc-trim.node', INSTALL_ROOT))

type Collect = () => void

type ExposedGc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void

let trimmer: (() => boolean) | null | undefined

/** glibc's malloc_trim(0), loaded at its first use; null where the addon is missing or would not load. */
export function mallocTrim(): (() => boolean) | null {
  if (trimmer !== undefined) return trimmer
  trimmer = null
  if (!existsSync(MALLOC_TRIM_ADDON)) return trimmer
  try {
    const addon = { exports: {} as { trim?: () => boolean } }
    process.dlopen(addon, MALLOC_TRIM_ADDON)
    trimmer = addon.exports.trim ?? null
  } catch {
    // Built for another platform, say: the agent works without it.
  }
  return trimmer
}

/** V8's collector as --expose-gc leaves it on the global object, then the trim; undefined without the flag. */
function exposedCollect(): Collect | undefined {
  const gc = (globalThis as { gc?: ExposedGc }).gc
  return (
    gc &&
    (() => {
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
      // A moment later: V8 frees the ArrayBuffers the collection found dead from a background task.
      const trim = mallocTrim()
      if (trim) setTimeout(trim, TRIM_DELAY_MS).unref()
    })
  )
}

/**
 * Returns the function to call whenever the last running job ends: it (re)arms one timer, and
 * when that fires and `idle()` still holds, lets `before` drop caches (the store's), then
 * collects. Without a collector (the flag not given: an agent started by hand) it does nothing.
 */
export function memoryReleaser(
  idle: () => boolean,
  options: { delayMs?: number; collect?: Collect | undefined; before?: () => void } = {},
): () => void {
  const { delayMs = RELEASE_DELAY_MS, before } = options
  const collect = 'collect' in options ? options.collect : exposedCollect()
  if (collect === undefined) return () => {}
  let timer: NodeJS.Timeout | undefined
  const fire = () => {
    if (!idle()) return
    before?.()
    collect()
  }
  return () => {
    if (timer) timer.refresh()
    else timer = setTimeout(fire, delayMs).unref()
  }
}

/** What a transfer's stage tells the agent's memory: bytes moved as they move, and its end. */
export interface TransferMemory {
  /** One transfer's progress hook (each transfer counts its own bytes). */
  during: () => (bytesDone: number) => void
  /** A stage that moved data has ended. */
  ended: () => void
}

/**
 * During a transfer: a collection each time another `everyBytes` have moved. Over a long stream
 * V8 kept its old generation's garbage (objects of parts in flight that outlived two scavenges)
 * and glibc its freed blocks: a 4 GiB stream grew the agent by ~7 MB; collected every 512 MiB (a
 * few ms each, ~8 times in a 4 GiB stream) it stays flat (peak of the process tree 104.1 -> 98.0
 * MB; docs/PERFORMANCE.md). After it: one collection on the next turn (its buffers are garbage
 * now). Without a collector both do nothing.
 */
export function transferMemory(collect: Collect | undefined = exposedCollect(), everyBytes = COLLECT_EVERY_BYTES): TransferMemory {
  if (collect === undefined) return { during: () => () => {}, ended: () => {} }
  return {
    during: () => {
      let collected = 0
      return (bytesDone) => {
        const due = Math.floor(bytesDone / everyBytes)
        if (due <= collected) return
        collected = due
        collect()
      }
    },
    ended: () => {
      setImmediate(collect)
    },
  }
}
