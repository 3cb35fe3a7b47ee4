// A byte range of an open file as a request body (an S3 part streamed from disk). Each attempt of
// a request reads it afresh, so a retried part is read again from the file instead of being held
// in memory for the retry. Reads are positional: several parts of one file handle can be in
// flight at once.
import type { FileHandle } from 'node:fs/promises'
import { JobError } from '../errors.ts'
import type { StreamedBody } from './http/client.ts'

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
 * `length` bytes of `file` from `start` as a request body (StreamedBody of swift-http.ts): each
 * attempt of the request reads the range again, into buffers taken from `buffers` and used
 * again once the socket has written them (a few reads ahead of the socket, SLOTS in all).
 *
 * Fails rather than ending early when the file holds fewer bytes than planned: it changed after
 * it was measured, and a short body would leave the server waiting for the rest.
 */
export function fileRangeBody(file: FileHandle, path: string, start: number, length: number, buffers: ReadBuffers): StreamedBody {
  return {
    length,
    async send(write) {
      const held: Buffer[] = []
      const writes: Promise<void>[] = []
      try {
        for (let done = 0, i = 0; done < length; i++) {
          const slot = i % SLOTS
          await writes[slot] // the socket is done with this slot's buffer
          const buffer = (held[slot] ??= buffers.take())
          const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - done), start + done)
          if (bytesRead === 0) {
            throw new JobError(`${path} changed while it was uploaded: it ends at byte ${start + done}, not ${start + length} (is something still writing it?)`)
          }
          done += bytesRead
          const writing = write(buffer.subarray(0, bytesRead))
          writing.catch(() => {}) // seen when the slot comes round again, or below
          writes[slot] = writing
        }
        await Promise.all(writes)
      } catch (error) {
        await Promise.allSettled(writes)
        throw error // the buffers stay with the failed request (the socket may not have let go of them)
      }
      buffers.give(held)
    },
  }
}
