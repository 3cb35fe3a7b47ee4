// Login throttling: an address that failed `maxFailures` logins within a minute is locked out
// for a minute. While locked out every request it sends is answered 429 without its credentials
// being looked at, so a password guesser learns nothing from the answers.
//
// The check runs on every request (GET /backup/{id} is the manager's polling hot path): it is one
// Map lookup, and nothing at all while no address has failed. Memory is bounded: at most
// `maxTracked` addresses are remembered; when full, stale and unlocked ones go first.
import type { BlockList } from 'node:net'
import { net } from '../util/builtins.ts'

export interface ThrottleOptions {
  /** Failures within the window that lock an address out; 0 turns throttling off. */
  maxFailures: number
  /** Addresses or CIDR ranges that are never locked out (the manager). */
  exempt: readonly string[]
  windowMs?: number
  maxTracked?: number
}

interface Failures {
  /** Times of the recent failures, oldest first; never more than maxFailures. */
  times: number[]
  /** Locked out until this time (ms since the epoch); 0 when not locked. */
  lockedUntil: number
}

export const THROTTLE_WINDOW_MS = 60_000
export const THROTTLE_MAX_TRACKED = 10_000

export class LoginThrottle {
  readonly #maxFailures: number
  readonly #windowMs: number
  readonly #maxTracked: number
  /** Only when addresses are exempt: a BlockList loads two modules more at start. */
  readonly #exempt: BlockList | undefined
  readonly #byAddress = new Map<string, Failures>()

  constructor(options: ThrottleOptions) {
    this.#maxFailures = options.maxFailures
    this.#windowMs = options.windowMs ?? THROTTLE_WINDOW_MS
    this.#maxTracked = options.maxTracked ?? THROTTLE_MAX_TRACKED
    if (options.exempt.length > 0) this.#exempt = new net.BlockList()
    for (const entry of options.exempt) {
      const [address = '', bits] = entry.split('/')
      const family = net.isIP(normalise(address)) === 6 ? 'ipv6' : 'ipv4'
      if (bits === undefined) this.#exempt?.addAddress(normalise(address), family)
      else this.#exempt?.addSubnet(normalise(address), Number(bits), family)
    }
  }

  /** How many addresses are remembered (for tests and metrics). */
  get tracked(): number {
    return this.#byAddress.size
  }

  /**
   * Whole seconds until `address` may send requests again; 0 when it is not locked out. Asked on
   * every poll: the clock is read only for an address with failures.
   */
  lockedFor(address: string | undefined, at?: number): number {
    if (this.#byAddress.size === 0 || address === undefined) return 0
    const key = normalise(address)
    const entry = this.#byAddress.get(key)
    if (entry === undefined) return 0
    const now = at ?? Date.now()
    if (entry.lockedUntil > now) return Math.ceil((entry.lockedUntil - now) / 1000)
    if (this.#isStale(entry, now)) this.#byAddress.delete(key)
    return 0
  }

  /** Records a failed login; true when this failure locked the address out. */
  recordFailure(address: string | undefined, now = Date.now()): boolean {
    if (this.#maxFailures === 0 || address === undefined) return false
    const key = normalise(address)
    if (this.#isExempt(key)) return false
    let entry = this.#byAddress.get(key)
    if (entry === undefined) {
      if (this.#byAddress.size >= this.#maxTracked) this.#makeRoom(now)
      entry = { times: [], lockedUntil: 0 }
      this.#byAddress.set(key, entry)
    }
    const since = now - this.#windowMs
    while (entry.times.length > 0 && (entry.times[0] as number) <= since) entry.times.shift()
    entry.times.push(now)
    if (entry.times.length < this.#maxFailures) return false
    // Locked out for a whole window; counting starts afresh when it ends.
    entry.lockedUntil = now + this.#windowMs
    entry.times = []
    return true
  }

  #isExempt(key: string): boolean {
    if (this.#exempt === undefined) return false
    const family = net.isIP(key)
    if (family === 0) return false
    return this.#exempt.check(key, family === 6 ? 'ipv6' : 'ipv4')
  }

  #isStale(entry: Failures, now: number): boolean {
    const newest = entry.times.at(-1) ?? 0
    return entry.lockedUntil <= now && newest <= now - this.#windowMs
  }

  /**
   * Forgets addresses until a tenth of the room is free: stale ones, then unlocked ones, then
   * (only under a flood from more addresses than the cap) the oldest locked ones. Freeing a tenth
   * at once keeps this O(n) walk rare.
   */
  #makeRoom(now: number): void {
    const target = Math.floor(this.#maxTracked * 0.9)
    const passes: ((e: Failures) => boolean)[] = [(e) => this.#isStale(e, now), (e) => e.lockedUntil <= now, () => true]
    for (const forget of passes) {
      for (const [key, entry] of this.#byAddress) {
        if (this.#byAddress.size <= target) return
        if (forget(entry)) this.#byAddress.delete(key)
      }
    }
  }
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports) as plain IPv4. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address.toLowerCase()
}
