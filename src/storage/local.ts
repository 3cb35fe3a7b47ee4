// LOCAL: objects are files under local_storage_root on this machine. For the demo and for trying
// the agent without a cloud; a backup on the database VM itself is no backup for production.
//
// No path from a request may leave the root: the prefix and the file name are checked as plain
// relative names (src/http/trigger.ts), and here again after symlinks are resolved.
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { JobError } from '../errors.ts'
import { writeAt } from './file-sink.ts'
import type { Downloaded, ObjectReader, Storage, TransferOptions } from './storage.ts'

export class LocalStorage implements Storage {
  readonly location: string
  readonly #root: string
  readonly #prefix: string

  constructor(root: string, prefix: string) {
    this.#root = resolve(root)
    this.#prefix = prefix
    this.location = `local folder ${join(this.#root, prefix)}`
  }

  /** The object's path, or a JobError when the name would leave the root. */
  #path(filename: string): string {
    const key = this.#prefix + filename
    const path = resolve(this.#root, key)
    if (!path.startsWith(this.#root + sep) || key.split('/').some((p) => p === '..' || p === '.' || p === '')) {
      throw new JobError(`the object name ${JSON.stringify(key)} would leave local_storage_root`)
    }
    return path
  }

  /** The object's folder, created, and proved to lie inside the root once symlinks are resolved. */
  async #folder(path: string, create: boolean): Promise<void> {
    const folder = dirname(path)
    if (create) {
      await mkdir(this.#root, { recursive: true, mode: 0o700 })
      await mkdir(folder, { recursive: true, mode: 0o700 })
    }
    const [realRoot, realFolder] = await Promise.all([realpath(this.#root), realpath(folder)])
    if (realFolder !== realRoot && !realFolder.startsWith(realRoot + sep)) {
      throw new JobError(`${folder} leads outside local_storage_root (a symlink?)`)
    }
  }

  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    const target = this.#path(filename)
    const partial = this.#partial(target)
    try {
      await this.#folder(target, true)
      options.onRequest?.()
      // Written beside the object and renamed at the end: a reader never sees half an object.
      await pipeline(createReadStream(path), createWriteStream(partial, { mode: 0o600 }), { signal: options.signal })
      const sha256 = await options.sha256
      await rename(partial, target)
      await this.#writeMetadata(target, sha256 ? { sha256 } : {})
    } catch (error) {
      await rm(partial, { force: true })
      throw this.#explain(error, `upload of ${this.#prefix}${filename}`, options.signal)
    }
  }

  async uploadStream(source: AsyncIterable<Buffer>, filename: string, options: TransferOptions & { metadata?: Record<string, string> } = {}): Promise<{ size: number }> {
    const target = this.#path(filename)
    const partial = this.#partial(target)
    let size = 0
    try {
      await this.#folder(target, true)
      options.onRequest?.()
      // One write at a time, each finished before the next chunk is asked for: the chunks are
      // borrowed (a write stream would queue them and ask for more).
      const file = await open(partial, 'w', 0o600)
      try {
        for await (const chunk of source) {
          if (options.signal?.aborted) throw new Error('aborted') // #explain names the reason
          await writeAt(file, chunk, size)
          size += chunk.length
          options.onProgress?.(size)
        }
      } finally {
        await file.close()
      }
      await rename(partial, target)
      await this.#writeMetadata(target, options.metadata ?? {})
      return { size }
    } catch (error) {
      await rm(partial, { force: true })
      throw this.#explain(error, `upload of ${this.#prefix}${filename}`, options.signal)
    }
  }

  async storeChecksum(filename: string, sha256: string, metadata: Record<string, string>): Promise<void> {
    await this.#writeMetadata(this.#path(filename), { ...metadata, sha256 })
  }

  async read(filename: string, options: TransferOptions = {}): Promise<ObjectReader> {
    const source = this.#path(filename)
    try {
      await this.#folder(source, false)
      options.onRequest?.()
      const info = await stat(source)
      if (!info.isFile()) throw new JobError(`${source} is not a file`)
      const metadata = await this.#readMetadata(source)
      return { sha256: metadata.sha256, size: info.size, metadata, chunks: createReadStream(source, { signal: options.signal }) }
    } catch (error) {
      throw this.#explain(error, `download of ${this.#prefix}${filename}`, options.signal)
    }
  }

  /** Object metadata (the SHA-256 and the stream format) in a hidden file beside the object. */
  #metadataPath(target: string): string {
    return join(dirname(target), `.${target.slice(dirname(target).length + 1)}.meta.json`)
  }

  async #writeMetadata(target: string, metadata: Record<string, string>): Promise<void> {
    await writeFile(this.#metadataPath(target), JSON.stringify(metadata), { mode: 0o600 })
  }

  async #readMetadata(target: string): Promise<Record<string, string>> {
    try {
      return JSON.parse(await readFile(this.#metadataPath(target), 'utf8')) as Record<string, string>
    } catch {
      return {} // an object written before metadata existed, or by hand
    }
  }

  async download(filename: string, targetPath: string, options: TransferOptions = {}): Promise<Downloaded> {
    const object = await this.read(filename, options)
    let size = 0
    try {
      const tapped = async function* () {
        for await (const chunk of object.chunks) {
          size += chunk.length
          options.onChunk?.(chunk)
          options.onProgress?.(size)
          yield chunk
        }
      }
      await pipeline(tapped(), createWriteStream(targetPath), { signal: options.signal })
      return { size, sha256: object.sha256 }
    } catch (error) {
      throw this.#explain(error, `download of ${this.#prefix}${filename}`, options.signal)
    }
  }

  async abandon(filename: string): Promise<void> {
    await rm(this.#partial(this.#path(filename)), { force: true })
  }

  #partial(target: string): string {
    return join(dirname(target), `.${target.slice(dirname(target).length + 1)}.partial`)
  }

  #explain(error: unknown, what: string, signal: AbortSignal | undefined): JobError {
    if (signal?.aborted) return new JobError(String(signal.reason), { cause: error })
    if (error instanceof JobError) return new JobError(`${what} failed: ${error.message}`, { cause: error })
    const code = (error as { code?: string }).code
    if (code === 'ENOENT') return new JobError(`${what} failed: no such object in ${this.location}`, { cause: error })
    return new JobError(`${what} failed in ${this.location}: ${(error as Error).message}`, { cause: error })
  }
}
