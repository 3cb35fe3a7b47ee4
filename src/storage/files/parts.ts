// Cutting a stream of unknown length into upload parts (S3 multipart parts, Swift segments).
import { createHash, type Hash } from 'node:crypto'

/** A part to upload; `release` hands its buffer back for the next part once it is sent or given up. */
export interface Part {
  number: number
  data: Buffer
  last: boolean
  /** The SHA-256 (hex) of `data`, when asked for. */
  sha256?: string
  release?: () => void
}

/**
 * Part buffers, reused once the upload of their part has settled. A fresh 8 MiB buffer per part
 * counts as new external memory to V8, which then ran a full mark-compact every few parts: 93 of
 * them in one 1 GiB S3 upload, up to 110 ms each on the event loop that also answers polls.
 * Bounded by the caller: it takes a buffer only for a part it is about to send.
 */
export class PartBuffers {
  readonly #free: Buffer[] = []

  /** A buffer of exactly `size` bytes, reused when one is free. */
  take(size: number): Buffer {
    const i = this.#free.findIndex((b) => b.length === size)
    if (i < 0) {
      // Part sizes only grow: smaller free buffers will not be asked for again.
      this.#free.length = 0
      return Buffer.allocUnsafe(size)
    }
    return this.#free.splice(i, 1)[0] as Buffer
  }

  give(buffer: Buffer): void {
    this.#free.push(buffer)
  }
}

/** Part n (from 1) is `first` bytes, doubled every `growEvery` parts, at most `max`. */
export function growingPartSize(first: number, growEvery: number, max: number): (partNumber: number) => number {
  return (partNumber) => Math.min(max, first * 2 ** Math.floor((partNumber - 1) / growEvery))
}

/**
 * Cuts a stream into parts of the given sizes; the last one is marked (read one chunk ahead).
 * `sha256`: each part's SHA-256 is taken as its bytes arrive (a chunk at a time, so the event loop
 * is never held for a whole part), for a signature that would otherwise hash the part afterwards.
 */
export async function* parts(
  source: AsyncIterable<Buffer>,
  sizeOf: (n: number) => number,
  buffers = new PartBuffers(),
  options: { sha256?: boolean } = {},
): AsyncGenerator<Part> {
  const newHash = (): Hash | undefined => (options.sha256 ? createHash('sha256') : undefined)
  let number = 1
  // The buffer being filled is taken when its first byte arrives, after the full part before it
  // was handed on: at most one buffer besides those the caller holds (an 8 MiB part less in
  // memory than taking it the moment the previous part filled).
  let part: Buffer | undefined
  let hash = newHash()
  let filled = 0
  let held: Buffer | undefined
  let heldSha256: string | undefined
  for await (const chunk of source) {
    let offset = 0
    while (offset < chunk.length) {
      if (held) {
        yield { number: number - 1, data: held, last: false, sha256: heldSha256, release: releaser(buffers, held) }
        held = undefined
      }
      part ??= buffers.take(sizeOf(number))
      const n = Math.min(part.length - filled, chunk.length - offset)
      chunk.copy(part, filled, offset, offset + n)
      hash?.update(chunk.subarray(offset, offset + n))
      filled += n
      offset += n
      if (filled === part.length) {
        held = part
        heldSha256 = hash?.digest('hex')
        number++
        part = undefined
        hash = newHash()
        filled = 0
      }
    }
  }
  if (held) yield { number: number - 1, data: held, last: true, sha256: heldSha256, release: releaser(buffers, held) }
  else {
    // nothing full is held: the stream ended inside a part, or was empty (one empty part)
    const last = part ?? buffers.take(0)
    yield { number, data: last.subarray(0, filled), last: true, sha256: hash?.digest('hex'), release: releaser(buffers, last) }
  }
}

function releaser(buffers: PartBuffers, buffer: Buffer): () => void {
  return () => buffers.give(buffer)
}
