// LOCAL: objects are files under local_storage_root on this machine. For the demo and for trying
// the agent without a cloud; a backup on the database VM itself is no backup for production.
//
// No path from a request may leave the root: the prefix and the file name are checked as plain
// relative names (src/http/trigger.ts), and here again after symlinks are resolved.
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, realpath, rename, rm, stat } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { JobError } from '../errors.ts'
import type { Storage, TransferOptions } from './storage.ts'

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
      await rename(partial, target)
    } catch (error) {
      await rm(partial, { force: true })
      throw this.#explain(error, `upload of ${this.#prefix}${filename}`, options.signal)
    }
  }

  async download(filename: string, targetPath: string, options: TransferOptions = {}): Promise<{ size: number }> {
    const source = this.#path(filename)
    try {
      await this.#folder(source, false)
      options.onRequest?.()
      const info = await stat(source)
      if (!info.isFile()) throw new JobError(`${source} is not a file`)
      await pipeline(createReadStream(source), createWriteStream(targetPath), { signal: options.signal })
      return { size: info.size }
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
