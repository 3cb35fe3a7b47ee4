// Memory back to the VM once the agent has nothing to do, and after each transfer. A job leaves
// V8's old generation full of its garbage (its objects outlive the 2 MB young generation), and V8
// collects and hands pages back only when its memory reducer notices a low allocation rate: 8 s
// after the first look, and the launcher delays that look to 60 s (it woke an idle agent up). So
// a second after the last running job ends, one full collection that compacts the heap and
// releases its free pages (V8's "last resort" flavour; --expose-gc in bin/osb-backup-agent).
// Measured, release build, 250 no-op jobs: RSS 86 -> 75 MB; a few ms, once per busy spell.
// A transfer's part buffers (3 x 6 MiB in flight while streaming) are garbage once it ends, but
// nothing made V8 collect them while the job went on, and freed they stayed in glibc's heap for
// good. So a stage that moved data is followed by the same collection, and blocks of 4 MiB and
// more are mapped on their own (MALLOC_MMAP_THRESHOLD_ in bin/osb-backup-agent): freed, they
// leave RSS. Measured, release build, a streamed 1 GiB backup to S3: the main process after the
// upload 89.9 -> 75.1 MB, the idle agent after the job 91.6 -> 78.8 MB (docs/PERFORMANCE.md).
const RELEASE_DELAY_MS = 1_000

type Collect = () => void

type ExposedGc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void

/** V8's collector as --expose-gc leaves it on the global object; undefined without the flag. */
function exposedCollect(): Collect | undefined {
  const gc = (globalThis as { gc?: ExposedGc }).gc
  return gc && (() => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }))
}

/**
 * Returns the function to call whenever the last running job ends: it (re)arms one timer, and
 * when that fires and `idle()` still holds, collects. Without a collector (the flag not given:
 * an agent started by hand) it does nothing.
 */
export function memoryReleaser(
  idle: () => boolean,
  delayMs = RELEASE_DELAY_MS,
  collect: Collect | undefined = exposedCollect(),
): () => void {
  if (collect === undefined) return () => {}
  let timer: NodeJS.Timeout | undefined
  const fire = () => {
    if (idle()) collect()
  }
  return () => {
    if (timer) timer.refresh()
    else timer = setTimeout(fire, delayMs).unref()
  }
}

/** Returns the function to call when a stage that moved data has ended: it collects on the next turn. */
export function transferReleaser(collect: Collect | undefined = exposedCollect()): () => void {
  if (collect === undefined) return () => {}
  return () => {
    setImmediate(collect)
  }
}
