// The polling bodies of finished jobs kept in memory: the few most recently finished or polled.
//
// A finished job's body (~0.7 KB, up to ~0.7 MB with full logs), its cached bytes and its listing
// summary stayed in memory for every stored record: after 1000 jobs, ~7 MB of RSS (V8 heap, and
// glibc heap the bytes pinned; docs/PERFORMANCE.md). A manager polls a job until it sees it end,
// so the bodies polls ask for are those of running jobs (always in memory) and of the few that
// just ended; an older one is read from the store on the poll that misses (JobRegistry.pollingBody).

/** What is kept of an entry while it is cached: dropping these leaves the entry's key fields. */
export interface CachedBody {
  body?: string | undefined
  bytes?: Buffer | undefined
  summary?: unknown
}

/** At most this many finished jobs' bodies are kept… */
export const RECENT_MAX_ENTRIES = 32
/**
 * …and at most this many bytes of them (body and its encoded bytes), except the most recent
 * one, which is kept whatever its size: the job being polled answers from memory (a 0.68 MB
 * body read from SQLite on every poll would halve polling throughput).
 */
export const RECENT_MAX_BYTES = 2 * 1024 * 1024

export class RecentBodies<E extends CachedBody> {
  /** In order of use, the oldest first; the value is the bytes counted for the entry. */
  readonly #entries = new Map<E, number>()
  #bytes = 0
  /** The entry last used (the hot path: the same finished job polled again and again). */
  #newest: E | undefined

  get size(): number {
    return this.#entries.size
  }

  /** Marks `entry` as the most recently used, (re)counting its body; drops the oldest beyond the bounds. */
  use(entry: E): void {
    const bytes = weight(entry)
    if (entry === this.#newest && this.#entries.get(entry) === bytes) return
    this.forget(entry)
    this.#entries.set(entry, bytes)
    this.#bytes += bytes
    this.#newest = entry
    this.#trim()
  }

  /** Forgets `entry` without touching it (a deleted job, or one that holds its body again). */
  forget(entry: E): void {
    const counted = this.#entries.get(entry)
    if (counted === undefined) return
    this.#entries.delete(entry)
    this.#bytes -= counted
    if (entry === this.#newest) this.#newest = undefined
  }

  #trim(): void {
    for (const [oldest, bytes] of this.#entries) {
      if (this.#entries.size <= 1) return
      if (this.#entries.size <= RECENT_MAX_ENTRIES && this.#bytes <= RECENT_MAX_BYTES) return
      this.#entries.delete(oldest)
      this.#bytes -= bytes
      oldest.body = undefined
      oldest.bytes = undefined
      oldest.summary = undefined
    }
  }
}

/** The bytes an entry's body costs: its string (one byte a character for ASCII) and its encoding once made. */
const weight = (entry: CachedBody) => (entry.body?.length ?? 0) + (entry.bytes?.length ?? 0)
