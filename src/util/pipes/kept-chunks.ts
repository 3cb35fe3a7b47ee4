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

const BUFFER_BYTES = 256 * 1024
const BUFFERS = 3
/** A buffer with less room than this goes to the consumer (a pipe read returns up to 64 KiB). */
const MIN_READ_BYTES = 64 * 1024

export interface KeptChunks {
  socket: net.Socket
  chunks: AsyncIterator<Buffer>
}

/** A socket on the pipe's fd whose data arrives as borrowed chunks (see above). */
export function keptChunks(fd: number): KeptChunks {
  const free: Buffer[] = Array.from({ length: BUFFERS }, () => Buffer.allocUnsafe(BUFFER_BYTES))
  /** Filled regions (and the buffers they are in), oldest first, not yet handed out. */
  const ready: { view: Buffer; buffer: Buffer }[] = []
  /** Where reads land, at `filled`. */
  let current = free.pop() as Buffer
  let filled = 0
  /** The buffer whose region the consumer holds: free again when it asks for the next chunk. */
  let lent: Buffer | undefined
  /** Every buffer is ready or lent: the socket is paused and `current` is the one to come back first. */
  let stalled = false
  let ended = false
  let failure: Error | undefined
  let waiting: { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: Error) => void } | undefined

  // Node asks for the next read's buffer right after each read's callback, so `current` and
  // `filled` may change only there (or once the pipe has ended), never when the consumer asks.
  const seal = () => {
    if (filled === 0) return
    ready.push({ view: current.subarray(0, filled), buffer: current })
    filled = 0
    const next = free.pop()
    if (next !== undefined) current = next
    else {
      // Buffers come back in the order they were handed out: the lent one, else the oldest ready.
      current = lent ?? (ready[0] as { buffer: Buffer }).buffer
      stalled = true
    }
  }
  const settle = () => {
    if (!waiting) return
    const { resolve, reject } = waiting
    const chunk = ready.shift()
    if (chunk !== undefined) {
      waiting = undefined
      lent = chunk.buffer
      resolve({ value: chunk.view, done: false })
    } else if (failure) {
      waiting = undefined
      reject(failure)
    } else if (ended) {
      waiting = undefined
      resolve({ value: undefined, done: true })
    }
  }

  const socket: net.Socket = new net.Socket({
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: () => current.subarray(filled),
      callback: (n: number) => {
        filled += n
        // A waiting consumer gets what has arrived rather than waiting for a full buffer.
        if (waiting || current.length - filled < MIN_READ_BYTES) seal()
        settle()
        return !stalled // false pauses the socket
      },
    },
  })
  const finish = () => {
    if (!ended) seal() // no read follows the end
    ended = true
    settle()
  }
  socket.on('end', finish)
  socket.on('close', finish)
  socket.on('error', (error) => {
    failure ??= error
    settle()
  })

  const chunks: AsyncIterator<Buffer> = {
    next() {
      if (lent) {
        // The consumer is done with it: its bytes may be overwritten now.
        const buffer = lent
        lent = undefined
        if (stalled && buffer === current) {
          stalled = false
          if (!ended && failure === undefined) socket.resume()
        } else if (buffer !== current) free.push(buffer)
      }
      return new Promise<IteratorResult<Buffer>>((resolve, reject) => {
        waiting = { resolve, reject }
        settle()
      })
    },
  }
  return { socket, chunks }
}
