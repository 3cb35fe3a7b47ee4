// Reading a pipe (BACKUP_STREAM) into a few kept buffers instead of a fresh 64 KiB buffer per
// read. A streamed gigabyte used to be 16k short-lived buffers: up to 15 MB of them waiting for
// V8's next full collection, on top of the upload's part buffers (docs/PERFORMANCE.md). Here the
// socket reads (`onread`) into the free end of one of BUFFERS buffers; the consumer gets filled
// regions, and while it holds every buffer the socket pauses (the script's writes then wait, as
// they would for a slow upload).
//
// The chunks are borrowed: one is valid until the consumer asks for the next. A consumer that
// keeps bytes longer (a compressor's input queue, say) must copy them.
import net from 'node:net'

const BUFFER_BYTES = 128 * 1024
const BUFFERS = 3
/** A buffer with less room than this goes to the consumer (a pipe read returns up to 64 KiB). */
const MIN_READ_BYTES = 64 * 1024

export interface KeptChunks {
  socket: net.Socket
  chunks: AsyncIterator<Buffer>
}

/** A socket on the pipe's fd whose data arrives as borrowed chunks (see above). */
export function keptChunks(fd: number): KeptChunks {
  const kept = new KeptBuffers(fd)
  const chunks: AsyncIterator<Buffer> = { next: () => kept.next() }
  return { socket: kept.socket, chunks }
}

class KeptBuffers {
  readonly socket: net.Socket
  readonly #free: Buffer[] = Array.from({ length: BUFFERS }, () => Buffer.allocUnsafe(BUFFER_BYTES))
  /** Filled regions (and the buffers they are in), oldest first, not yet handed out. */
  readonly #ready: { view: Buffer; buffer: Buffer }[] = []
  /** Where reads land, at `filled`. */
  #current = this.#free.pop() as Buffer
  #filled = 0
  /** The buffer whose region the consumer holds: free again when it asks for the next chunk. */
  #lent: Buffer | undefined
  /** Every buffer is ready or lent: the socket is paused and `current` is the one to come back first. */
  #stalled = false
  #ended = false
  #failure: Error | undefined
  #waiting: { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: Error) => void } | undefined

  constructor(fd: number) {
    this.socket = new net.Socket({
      fd,
      readable: true,
      writable: false,
      onread: {
        buffer: () => this.#current.subarray(this.#filled),
        callback: (n: number) => this.#onRead(n),
      },
    })
    const finish = () => this.#finish()
    this.socket.on('end', finish)
    this.socket.on('close', finish)
    this.socket.on('error', (error) => {
      this.#failure ??= error
      this.#settle()
    })
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.#lent) {
      // The consumer is done with it: its bytes may be overwritten now.
      const buffer = this.#lent
      this.#lent = undefined
      if (this.#stalled && buffer === this.#current) {
        this.#stalled = false
        if (!this.#ended && this.#failure === undefined) this.socket.resume()
      } else if (buffer !== this.#current) this.#free.push(buffer)
    }
    return new Promise<IteratorResult<Buffer>>((resolve, reject) => {
      this.#waiting = { resolve, reject }
      this.#settle()
    })
  }

  #onRead(n: number): boolean {
    this.#filled += n
    // A waiting consumer gets what has arrived rather than waiting for a full buffer.
    if (this.#waiting || this.#current.length - this.#filled < MIN_READ_BYTES) this.#seal()
    this.#settle()
    return !this.#stalled // false pauses the socket
  }

  #finish(): void {
    if (!this.#ended) this.#seal() // no read follows the end
    this.#ended = true
    this.#settle()
  }

  // Node asks for the next read's buffer right after each read's callback, so `current` and
  // `filled` may change only there (or once the pipe has ended), never when the consumer asks.
  #seal(): void {
    if (this.#filled === 0) return
    this.#ready.push({ view: this.#current.subarray(0, this.#filled), buffer: this.#current })
    this.#filled = 0
    const next = this.#free.pop()
    if (next !== undefined) this.#current = next
    else {
      // Buffers come back in the order they were handed out: the lent one, else the oldest ready.
      this.#current = this.#lent ?? (this.#ready[0] as { buffer: Buffer }).buffer
      this.#stalled = true
    }
  }

  #settle(): void {
    if (!this.#waiting) return
    const { resolve, reject } = this.#waiting
    const chunk = this.#ready.shift()
    if (chunk !== undefined) {
      this.#waiting = undefined
      this.#lent = chunk.buffer
      resolve({ value: chunk.view, done: false })
    } else if (this.#failure) {
      this.#waiting = undefined
      reject(this.#failure)
    } else if (this.#ended) {
      this.#waiting = undefined
      resolve({ value: undefined, done: true })
    }
  }
}
