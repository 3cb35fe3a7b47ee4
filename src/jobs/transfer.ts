// Options every transfer stage passes to its storage backend: cancellation, the attempts
// counter, and the polling body's progress, published at most once a second.
import type { TransferOptions } from '../storage/storage.ts'
import type { Job } from './job.ts'

export function transferOptions(job: Job, changed: () => void, signal: AbortSignal | undefined, total: number | null): TransferOptions {
  const started = Date.now()
  let published = 0
  job.progress = { bytes_done: 0, bytes_total: total, bytes_per_second: 0 }
  return {
    signal,
    onRequest: () => {
      job.attempts++
    },
    onProgress: (done: number) => {
      const now = Date.now()
      const seconds = (now - started) / 1000
      job.progress = { bytes_done: done, bytes_total: total, bytes_per_second: seconds > 0 ? Math.round(done / seconds) : 0 }
      if (now - published >= 1000) {
        published = now
        changed()
      }
    },
  }
}
