// A writable stream into a file at a position that reports each chunk only once it is on disk.
// A download that breaks mid-body resumes from exactly the bytes written, and a hash fed from
// here covers exactly the file's content (fs.WriteStream may drop queued chunks on an error).
import { Writable } from 'node:stream'
import type { FileHandle } from 'node:fs/promises'

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
    this.#file.write(chunk, 0, chunk.length, this.#position).then(
      () => {
        this.#position += chunk.length
        this.#written(chunk)
        callback()
      },
      (error: Error) => callback(error),
    )
  }
}
