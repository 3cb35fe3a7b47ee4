// Bounded capture of a script's stdout or stderr: the last `maxBytes` of the stream, with the
// request's secrets masked and a note when the start was cut.
//
// A script may print gigabytes (or a database dump to stdout by mistake): only a window of
// maxBytes plus the longest secret is kept, so masking still sees a secret that straddles the
// cut, and memory stays bounded whatever the script prints.

export const MASK = '******'

export class TailCapture {
  readonly #maxBytes: number
  readonly #keepBytes: number
  readonly #secrets: Buffer[]
  #chunks: Buffer[] = []
  #held = 0
  #dropped = 0

  constructor(maxBytes: number, secrets: readonly string[]) {
    this.#maxBytes = maxBytes
    // Longest first, so a secret that contains another is masked whole.
    this.#secrets = [...new Set(secrets)].filter((s) => s !== '').map((s) => Buffer.from(s)).sort((a, b) => b.length - a.length)
    const longest = this.#secrets[0]?.length ?? 0
    this.#keepBytes = maxBytes + longest
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

  /** The captured text: masked, then cut to maxBytes from the end. */
  text(): string {
    this.#compact()
    let window = this.#chunks[0] ?? Buffer.alloc(0)
    for (const secret of this.#secrets) window = maskAll(window, secret)
    const cut = Math.max(0, window.length - this.#maxBytes)
    const kept = window.subarray(cut)
    const text = kept.toString('utf8')
    if (this.#dropped + cut === 0) return text
    return `[output cut: earlier bytes not kept, showing the last ${kept.length} bytes]\n${text}`
  }
}

function maskAll(haystack: Buffer, needle: Buffer): Buffer {
  let at = haystack.indexOf(needle)
  if (at < 0) return haystack
  const parts: Buffer[] = []
  let from = 0
  const mask = Buffer.from(MASK)
  while (at >= 0) {
    parts.push(haystack.subarray(from, at), mask)
    from = at + needle.length
    at = haystack.indexOf(needle, from)
  }
  parts.push(haystack.subarray(from))
  return Buffer.concat(parts)
}

/** Masks every secret in a string (for messages that quote script output). */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of [...secrets].filter((s) => s !== '').sort((a, b) => b.length - a.length)) out = out.split(s).join(MASK)
  return out
}
