// One full garbage collection once the agent has gone idle: a second after the last running job
// ended, and only where the launcher exposes gc (bin/osb-backup-agent: --expose-gc). Each job's
// short-lived objects outlive a scavenge of the small young generation (--max-semi-space-size=2)
// and pile up in the old one, which V8 grows and then keeps: after 300 no-op jobs the heap was
// 24 MB for 10 MB of live objects, and V8's own memory reducer looks only after 60 s (the
// launcher delays it: it woke an idle agent every 8 s). One collection here costs a few
// milliseconds per burst of jobs and gives the pages back (docs/PERFORMANCE.md).
const IDLE_GC_DELAY_MS = 1000

let timer: NodeJS.Timeout | undefined

/** Called when a job ends: collects a second later if no job runs then (the next job's end tries again). */
export function collectWhenIdle(idle: () => boolean): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return
  clearTimeout(timer)
  timer = setTimeout(() => {
    if (idle()) gc()
  }, IDLE_GC_DELAY_MS)
  timer.unref()
}
