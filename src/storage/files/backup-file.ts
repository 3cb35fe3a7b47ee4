// The backup file as upload bodies: opened safely (openBackupFile), and byte ranges of it sent as
// request bodies (StreamedBody of ../http/client.ts) - a Swift segment by its path
// (sendFileRange), an S3 part from a file handle several parts share (fileRangeBody). Both read
// into a few buffers that are used again once the socket has taken them. fs.createReadStream
// allocates a fresh buffer for every read, and glibc hands that memory back to the kernel just as
// often: a page fault per 4 KiB, ~0.6 s of system time per GiB read on the test machine
// (docs/PERFORMANCE.md), against ~0.2 s with buffers that are kept.
import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { basename } from 'node:path'
import { JobError } from '../../errors.ts'
import type { StreamedBody } from '../http/client.ts'

/**
 * How the backup file is opened for an upload: the job's file itself, never a link's target
 * (O_NOFOLLOW), and never waiting on a FIFO swapped in its place by a process the script left
 * (O_NONBLOCK: a FIFO's open would wait for a writer forever; no effect on a regular file).
 */
export const BACKUP_FILE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK

export const notAFile = (path: string) =>
  new JobError(`the backup file ${basename(path)} is no longer a regular file (a process replaced it while it was uploaded)`)
export const linkedFile = (path: string, links: number) =>
  new JobError(
    `the backup file ${basename(path)} now has ${links} hard links (a process replaced it with a link to another file while it was uploaded?); it is not uploaded`,
  )

/**
 * Opens the backup file for an upload (BACKUP_FILE_FLAGS) and checks, on the open file, that it
 * is a regular file with one link: the job chose it so (src/jobs/transfer.ts), and a second link
 * now means a file from elsewhere took its name.
 */
export async function openBackupFile(path: string): Promise<FileHandle> {
  const file = await open(path, BACKUP_FILE_FLAGS)
  try {
    const info = await file.stat()
    if (!info.isFile()) throw notAFile(path)
    if (info.nlink > 1) throw linkedFile(path, info.nlink)
    return file
  } catch (error) {
    await file.close()
    throw error
  }
}

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
export async function sendFileRange(
  { path, start, length }: FileRange,
  write: (chunk: Buffer) => Promise<void>,
  onChunk: (chunk: Buffer) => void,
): Promise<void> {
  if (length === 0) return
  const file = await openBackupFile(path)
  const writes: Promise<void>[] = []
  try {
    const buffers: Buffer[] = []
    let done = 0
    for (let i = 0; done < length; i++) {
      const slot = i % BUFFERS
      await writes[slot] // the socket is done with this buffer
      const buffer = (buffers[slot] ??= Buffer.allocUnsafeSlow(Math.min(READ_BYTES, length)))
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, length - done), start + done)
      if (bytesRead === 0)
        throw new JobError(`${path} changed while it was uploaded: read ${done} of ${length} bytes (is something still writing it?)`)
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

// S3 parts: a byte range of an open file as a request body. Each attempt of a request reads it
// afresh, so a retried part is read again from the file instead of being held in memory for the
// retry. Reads are positional: several parts of one file handle can be in flight at once.

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
 * `length` bytes of `file` from `start` as a request body (StreamedBody of ../http/client.ts): each
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
            throw new JobError(
              `${path} changed while it was uploaded: it ends at byte ${start + done}, not ${start + length} (is something still writing it?)`,
            )
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
