// A writable stream into a file at a position that reports each chunk only once it is on disk.
// A download that breaks mid-body resumes from exactly the bytes written, and a hash fed from
// here covers exactly the file's content (fs.WriteStream may drop queued chunks on an error).
//
// Chunks that queue up while a write is in flight go to disk together with one writev: a
// download arrives in chunks of 16-64 KiB, and one thread-pool round trip per chunk was what
// held the network reads back (bench/, docs/PERFORMANCE.md).
import { Writable, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FileHandle } from 'node:fs/promises'
import type { BorrowedBody } from '../http/client.ts'

/** At most this many buffers per writev (Linux's IOV_MAX is 1024). */
const MAX_IOV = 1024

export class FileSink extends Writable {
  readonly #file: FileHandle
  #position: number
  readonly #written: (chunk: Buffer) => void

  constructor(file: FileHandle, position: number, written: (chunk: Buffer) => void) {
    super({ highWaterMark: 1024 * 1024 })
    this.#file = file
    this.#position = position
    this.#written = written
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#writeAll([chunk]).then(() => callback(), callback)
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback)
  }

  /** Writes the chunks in order (a short write is continued) and reports each one once it is on disk. */
  async #writeAll(chunks: Buffer[]): Promise<void> {
    let next = 0 // the first chunk not yet wholly on disk
    let offset = 0 // bytes of chunks[next] already on disk
    while (next < chunks.length) {
      if ((chunks[next] as Buffer).length === 0) {
        this.#written(chunks[next++] as Buffer)
        continue
      }
      const batch = chunks.slice(next, next + MAX_IOV)
      batch[0] = (batch[0] as Buffer).subarray(offset)
      const { bytesWritten } =
        batch.length === 1
          ? await this.#file.write(batch[0], 0, batch[0].length, this.#position)
          : await this.#file.writev(batch, this.#position)
      if (bytesWritten === 0) throw new Error('the file took no bytes')
      this.#position += bytesWritten
      let left = bytesWritten + offset
      while (next < chunks.length && left >= (chunks[next] as Buffer).length) {
        left -= (chunks[next] as Buffer).length
        this.#written(chunks[next] as Buffer)
        next++
      }
      offset = left
    }
  }
}

/** Writes all of `data` at `position` (a download's kept buffer: its bytes stay put meanwhile). */
export async function writeAt(file: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset, position + offset)
    if (bytesWritten === 0) throw new Error('the file took no bytes')
    offset += bytesWritten
  }
}

/**
 * Writes a download's body into `file` from `position`, in order. `seen` gets every chunk once
 * (a kept batch while the thread pool writes it: both only read it), `written` the bytes on
 * disk so far after each chunk, so that a resume continues exactly there. A write that fails
 * ends the download (no resume), so nothing seen is left unwritten.
 */
export async function writeBody(
  body: BorrowedBody | Readable,
  file: FileHandle,
  position: number,
  seen: (chunk: Buffer) => void,
  written: (total: number) => void,
): Promise<void> {
  let total = position
  if ('pipeTo' in body) {
    await body.pipeTo(async (batch) => {
      const writing = writeAt(file, batch, total)
      seen(batch)
      await writing
      total += batch.length
      written(total)
    })
    return
  }
  await pipeline(
    body,
    new FileSink(file, total, (chunk) => {
      total += chunk.length
      seen(chunk)
      written(total)
    }),
  )
}
