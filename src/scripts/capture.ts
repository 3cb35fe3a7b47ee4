// Bounded capture of a script's stdout or stderr: the last `maxBytes` of the stream, with the
// request's secrets masked and a note when the start was cut.
//
// A script may print gigabytes (or a database dump to stdout by mistake): only a window of
// maxBytes plus the longest secret form is kept, so masking still sees a secret that straddles
// the cut, and memory stays bounded whatever the script prints.
//
// Masking comes before the cut, and the cut never leaves a piece of a secret at either edge:
// - the start moves past any masked region it would land in, and past the first bytes of a window
//   whose beginning was dropped (they may be the end of a secret that began before it);
// - the end, where reading stopped, is masked when it holds the start of a secret form (a process
//   that was still printing it).
import { secretByteForms, secretForms } from './secret-forms.ts'

export const MASK = '******'
const MASK_BYTES = Buffer.from(MASK)

/** A piece of the end of the output shorter than this is not taken for the start of a secret. */
const MIN_PARTIAL_BYTES = 4

/** A secret form to search for, with its smallest period (for finding overlapping occurrences). */
interface Form {
  bytes: Buffer
  period: number
}

/** A job's secrets are one array for all its stages: its forms are made once. */
const formsOf = new WeakMap<readonly string[], Form[]>()

/** The forms of all secrets, longest first, deduplicated. */
export function maskedForms(secrets: readonly string[]): Form[] {
  let forms = formsOf.get(secrets)
  if (forms === undefined) formsOf.set(secrets, (forms = makeForms(secrets)))
  return forms
}

function makeForms(secrets: readonly string[]): Form[] {
  // keyed by the bytes (as latin1, one character per byte): byte forms need not be UTF-8
  const all = new Map<string, Buffer>()
  const add = (bytes: Buffer) => all.set(bytes.toString('latin1'), bytes)
  for (const secret of secrets) {
    for (const form of secretForms(secret)) add(Buffer.from(form))
    for (const form of secretByteForms(secret)) add(form)
  }
  return [...all.values()].sort((a, b) => b.length - a.length).map((bytes) => ({ bytes, period: smallestPeriod(bytes) }))
}

export class TailCapture {
  readonly #maxBytes: number
  readonly #forms: Form[]
  readonly #longest: number
  readonly #keepBytes: number
  #chunks: Buffer[] = []
  #held = 0
  #dropped = 0

  constructor(maxBytes: number, secrets: readonly string[]) {
    this.#maxBytes = maxBytes
    this.#forms = maskedForms(secrets)
    this.#longest = this.#forms[0]?.bytes.length ?? 0
    this.#keepBytes = maxBytes + this.#longest
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk)
    this.#held += chunk.length
    if (this.#held > 2 * this.#keepBytes + 65536) this.#compact()
  }

  #compact(): void {
    const all = Buffer.concat(this.#chunks)
    const cut = Math.max(0, all.length - this.#keepBytes)
    this.#dropped += cut
    this.#chunks = [all.subarray(cut)]
    this.#held = all.length - cut
  }

  /** The captured text: masked, then cut to at most maxBytes from the end. */
  text(): string {
    this.#compact()
    const window = this.#chunks[0] ?? Buffer.alloc(0)
    const regions = secretRegions(window, this.#forms, true)
    // Bytes before the window were dropped: its first bytes may be the rest of a secret.
    const earliest = this.#dropped > 0 ? Math.min(window.length, Math.max(0, this.#longest - 1)) : 0
    const pieces = maskedPieces(window, regions, earliest)
    const kept: Buffer[] = []
    let size = 0
    let complete = earliest === 0
    for (let i = pieces.length - 1; i >= 0; i--) {
      const piece = pieces[i] as Buffer
      const room = this.#maxBytes - size
      if (piece.length <= room) {
        kept.push(piece)
        size += piece.length
        continue
      }
      // A mask that does not fit is left out whole; plain text is cut.
      if (piece !== MASK_BYTES && room > 0) {
        kept.push(piece.subarray(piece.length - room))
        size += room
      }
      complete = false
      break
    }
    const text = Buffer.concat(kept.reverse()).toString('utf8')
    if (this.#dropped === 0 && complete) return text
    return `[output cut: earlier bytes not kept, showing the last ${size} bytes]\n${text}`
  }
}

/**
 * Where the forms occur in `haystack`, as sorted [start, end) pairs; overlapping occurrences
 * (also of different secrets) are merged, so no piece of one survives beside another's mask.
 * With `partialEnd`, an end of the haystack that is the start of a form is a region too.
 */
export function secretRegions(haystack: Buffer, forms: readonly Form[], partialEnd: boolean): [number, number][] {
  const found: [number, number][] = []
  for (const form of forms) findAll(haystack, form, (start, end) => found.push([start, end]))
  if (partialEnd) {
    const partial = partialFormAtEnd(haystack, forms)
    if (partial < haystack.length) found.push([partial, haystack.length])
  }
  found.sort((a, b) => a[0] - b[0] || b[1] - a[1])
  const merged: [number, number][] = []
  for (const [start, end] of found) {
    const last = merged[merged.length - 1]
    if (last && start < last[1]) last[1] = Math.max(last[1], end)
    else merged.push([start, end])
  }
  return merged
}

/** The plain and masked pieces of haystack from `from` on; a region `from` falls into is skipped. */
function maskedPieces(haystack: Buffer, regions: readonly [number, number][], from: number): Buffer[] {
  const pieces: Buffer[] = []
  let at = from
  for (const [start, end] of regions) {
    if (end <= at) continue
    if (start < at) {
      at = end
      continue
    }
    if (start > at) pieces.push(haystack.subarray(at, start))
    pieces.push(MASK_BYTES)
    at = end
  }
  if (at < haystack.length) pieces.push(haystack.subarray(at))
  return pieces
}

/**
 * Calls `found` for every occurrence of the form, overlapping ones included, in O(haystack) time:
 * a periodic form (`abab…`) repeated in place is followed period by period, and after such a run
 * the next occurrence cannot start before max(period, length - period + 1) bytes further (Fine and
 * Wilf: an earlier one would continue the run).
 */
function findAll(haystack: Buffer, form: Form, found: (start: number, end: number) => void): void {
  const { bytes, period } = form
  const m = bytes.length
  const skip = Math.max(period, m - period + 1)
  let at = haystack.indexOf(bytes)
  while (at >= 0) {
    let last = at
    while (period < m && last + m + period <= haystack.length && haystack.compare(bytes, m - period, m, last + m, last + m + period) === 0)
      last += period
    found(at, last + m)
    at = haystack.indexOf(bytes, last + skip)
  }
}

/** Where a trailing start of some form (at least MIN_PARTIAL_BYTES long) begins; length if none. */
function partialFormAtEnd(haystack: Buffer, forms: readonly Form[]): number {
  let earliest = haystack.length
  for (const { bytes } of forms) {
    const head = bytes.subarray(0, MIN_PARTIAL_BYTES)
    // candidates: starts from which fewer than the whole form remains
    let at = haystack.indexOf(head, Math.max(0, haystack.length - bytes.length + 1))
    while (at >= 0 && at < earliest && haystack.length - at >= MIN_PARTIAL_BYTES) {
      const rest = haystack.length - at
      if (haystack.compare(bytes, 0, rest, at) === 0) {
        earliest = at
        break
      }
      at = haystack.indexOf(head, at + 1)
    }
  }
  return earliest
}

/** The smallest p > 0 with bytes[i] = bytes[i + p] for all i (KMP's failure function). */
function smallestPeriod(bytes: Buffer): number {
  const border = new Int32Array(bytes.length + 1)
  border[0] = -1
  let k = -1
  for (let i = 0; i < bytes.length; i++) {
    while (k >= 0 && bytes[k] !== bytes[i]) k = border[k] as number
    k++
    border[i + 1] = k
  }
  return bytes.length - (border[bytes.length] as number)
}

/** Masks every form of every secret in a string (for messages that may quote script output). */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  const forms = maskedForms(secrets)
  if (forms.length === 0) return text
  const bytes = Buffer.from(text)
  return Buffer.concat(maskedPieces(bytes, secretRegions(bytes, forms, false), 0)).toString('utf8')
}
