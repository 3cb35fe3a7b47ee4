// A byte range of an open file as a request body stream (an S3 part streamed from disk). Each
// attempt of a request takes a fresh stream, so a retried part is read again from the file
// instead of being held in memory for the retry. Reads are positional: several parts of one
// file handle can be in flight at once.
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { JobError } from '../errors.ts'

const READ_BYTES = 256 * 1024
/** Chunks of one body in flight: one being read while the others wait for the socket. */
const SLOTS = 4

/**
 * Read buffers shared by the bodies of one upload, each used again once the socket has written
 * it. A fresh buffer per read is garbage V8 collects only every 30-40 MB (measured: up to 40 MB
 * of dead read buffers at once during a 4 GiB upload, a fifth of the agent's peak RSS).
 */
export class ReadBuffers {
  readonly #free: Buffer[] = []

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES)
  }

  give(buffers: Buffer[]): void {
    this.#free.push(...buffers)
  }
}

/**
 * `length` bytes of `file` from `start`, as a stream the AWS SDK sends with `pipe()`: the only
 * way it sends a stream body. pipe() does not say when the socket has let go of a chunk, so this
 * stream writes to the request itself, each chunk with a callback, and reads the next chunk into a
 * buffer only once its write has completed.
 *
 * Fails (an 'error' event, the request is left unfinished) rather than ending early when the file
 * holds fewer bytes than planned: it changed after it was measured, and a short body would leave
 * the server waiting for the rest.
 */
export class FileRangeBody extends Readable {
  readonly #file: FileHandle
  readonly #path: string
  readonly #start: number
  readonly #length: number
  readonly #buffers: ReadBuffers

  constructor(file: FileHandle, path: string, start: number, length: number, buffers: ReadBuffers) {
    super()
    this.#file = file
    this.#path = path
    this.#start = start
    this.#length = length
    this.#buffers = buffers
  }

  override _read(): void {
    this.destroy(new Error('FileRangeBody can only be piped into a request'))
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    this.#send(destination).then(
      () => destination.end(),
      (error: unknown) => this.destroy(error as Error),
    )
    return destination
  }

  async #send(destination: NodeJS.WritableStream): Promise<void> {
    const held: Buffer[] = []
    const writes: Promise<void>[] = []
    for (let done = 0, i = 0; done < this.#length; i++) {
      const slot = i % SLOTS
      await writes[slot] // the socket is done with this slot's buffer
      if (this.destroyed) return // the request failed or was aborted: its buffers stay with it
      const buffer = (held[slot] ??= this.#buffers.take())
      const want = Math.min(buffer.length, this.#length - done)
      const { bytesRead } = await this.#file.read(buffer, 0, want, this.#start + done)
      if (this.destroyed) return
      if (bytesRead === 0) {
        throw new JobError(`${this.#path} changed while it was uploaded: it ends at byte ${this.#start + done}, not ${this.#start + this.#length} (is something still writing it?)`)
      }
      done += bytesRead
      const chunk = buffer.subarray(0, bytesRead)
      writes[slot] = new Promise<void>((resolve, reject) => {
        destination.write(chunk, (error?: Error | null) => (error ? reject(error) : resolve()))
      })
      writes[slot].catch(() => {}) // seen when the slot comes round again, or below
    }
    await Promise.all(writes)
    this.#buffers.give(held)
  }
}
