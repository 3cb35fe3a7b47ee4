// A byte range of a file sent as a request body (StreamedBody.send of swift-http.ts), read into
// a few buffers that are used again once the socket has taken them. fs.createReadStream
// allocates a fresh buffer for every read, and glibc hands that memory back to the kernel just as
// often: a page fault per 4 KiB, ~0.6 s of system time per GiB read on the test machine
// (docs/PERFORMANCE.md), against ~0.2 s with buffers that are kept.
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { JobError } from '../errors.ts'

export interface FileRange {
  path: string
  start: number
  length: number
}

const READ_BYTES = 256 * 1024
/** Buffers per range: one being read while the others wait for the socket. */
const BUFFERS = 4

/**
 * Reads the range in order and passes each chunk to `write` (after `onChunk`); fails when the file
 * holds fewer bytes than planned (it changed after it was measured): a short body would leave the
 * server waiting for the rest.
 */
export async function sendFileRange({ path, start, length }: FileRange, write: (chunk: Buffer) => Promise<void>, onChunk: (chunk: Buffer) => void): Promise<void> {
  if (length === 0) return
  const file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW) // the job's file itself, never a link's target
  const writes: Promise<void>[] = []
  try {
    const buffers: Buffer[] = []
    let done = 0
    for (let i = 0; done < length; i++) {
      const slot = i % BUFFERS
      await writes[slot] // the socket is done with this buffer
      const buffer = (buffers[slot] ??= Buffer.allocUnsafeSlow(Math.min(READ_BYTES, length)))
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - done), start + done)
      if (bytesRead === 0) throw new JobError(`${path} changed while it was uploaded: read ${done} of ${length} bytes (is something still writing it?)`)
      const chunk = buffer.subarray(0, bytesRead)
      done += bytesRead
      onChunk(chunk)
      const writing = write(chunk)
      writing.catch(() => {}) // seen when its buffer comes round again, or at the end
      writes[slot] = writing
    }
    await Promise.all(writes)
  } finally {
    await file.close()
  }
}
