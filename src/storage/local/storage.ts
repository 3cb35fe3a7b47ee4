// LOCAL: objects are files under local_storage_root on this machine. For the demo and for trying
// the agent without a cloud; a backup on the database VM itself is no backup for production.
//
// No path from a request may leave the root: the prefix and the file name are checked as plain
// relative names (src/http/trigger.ts), and here again. Folders are walked one at a time through
// open handles (/proc/self/fd/<fd>/<name>, Linux's openat): each one is proved to lie inside the
// root once opened, so a symlink planted between a check and a use cannot redirect the walk.
// Objects and the agent's own files are never opened through a link.
//
// Names with a part that starts with `.` are the agent's own (`.<name>.meta.json`, partial
// uploads): they are not objects, and no request can restore or overwrite them.
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { mkdir, open, readdir, readlink, realpath, rename, rm, type FileHandle } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { JobError } from '../../errors.ts'
import { openBackupFile } from '../files/backup-file.ts'
import { FileSink, writeAt } from '../files/sink.ts'
import type { Downloaded, GarbageOptions, ObjectReader, Reclaimed, Storage, TransferOptions } from '../storage.ts'
import { removeOrphanedMetadata } from './garbage.ts'
import { at, metadataName } from './names.ts'

const FOLDER = constants.O_RDONLY | constants.O_DIRECTORY
/** Created here or not at all, never through a link. */
const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
/** Never through a link; non-blocking so that a FIFO planted in place of a file cannot hang the open. */
const EXISTING_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK
/** A metadata file larger than this is not the agent's. */
const MAX_METADATA_BYTES = 64 * 1024

/** Where an object is: its folders below the root and its name in the last one. */
interface Place {
  key: string
  folders: string[]
  name: string
}

const partialName = (name: string) => `.${name}.partial-${randomBytes(8).toString('hex')}`
const metadataPartialName = (name: string) => `${metadataName(name)}.${randomBytes(8).toString('hex')}`

/** The temporary names an interrupted upload of `name` may have left (and `.<name>.partial`, from older agents). */
function isLeftOver(entry: string, name: string): boolean {
  for (const prefix of [`.${name}.partial-`, `${metadataName(name)}.`]) {
    if (entry.startsWith(prefix) && /^[0-9a-f]{16}$/.test(entry.slice(prefix.length))) return true
  }
  return entry === `.${name}.partial`
}

export class LocalStorage implements Storage {
  readonly location: string
  readonly #root: string
  readonly #prefix: string

  constructor(root: string, prefix: string) {
    this.#root = resolve(root)
    this.#prefix = prefix
    this.location = `local folder ${join(this.#root, prefix)}`
  }

  /** The object's place, or a JobError when the name would leave the root or is the agent's own. */
  #place(filename: string): Place {
    const key = this.#prefix + filename
    const parts = key.split('/')
    if (parts.some((p) => p === '..' || p === '.' || p === '')) {
      throw new JobError(`the object name ${JSON.stringify(key)} would leave local_storage_root`)
    }
    if (parts.some((p) => p.startsWith('.'))) {
      throw new JobError(
        `the object name ${JSON.stringify(key)} has a part that starts with ".": in LOCAL storage such names are reserved for the agent's own files (metadata, partial uploads)`,
      )
    }
    return { key, folders: parts.slice(0, -1), name: parts.at(-1) as string }
  }

  /**
   * Opens the object's folder, one folder at a time from the root (creating them when `create`),
   * each proved to lie inside the root once open. The caller closes it.
   */
  async #openFolder(place: Place, create: boolean): Promise<FileHandle> {
    if (create) await mkdir(this.#root, { recursive: true, mode: 0o700 })
    const realRoot = await realpath(this.#root)
    let folder = await open(realRoot, FOLDER)
    try {
      for (const [i, part] of place.folders.entries()) {
        if (create) {
          await mkdir(at(folder, part), { mode: 0o700 }).catch((error: { code?: string }) => {
            if (error.code !== 'EEXIST') throw error
          })
        }
        const next = await open(at(folder, part), FOLDER)
        await folder.close()
        folder = next
        const real = await readlink(`/proc/self/fd/${folder.fd}`)
        if (real !== realRoot && !real.startsWith(realRoot + sep)) {
          throw new JobError(`${join(this.#root, ...place.folders.slice(0, i + 1))} leads outside local_storage_root (a symlink?)`)
        }
      }
      return folder
    } catch (error) {
      await folder.close()
      throw error
    }
  }

  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    const place = this.#place(filename)
    await this.#write(place, options, async (file) => {
      // The job's file, read without following a link (the backup is the file the script left).
      await pipeline(createReadStreamNoFollow(path), file.createWriteStream(), { signal: options.signal })
      const sha256 = await options.sha256
      const metadata: Record<string, string> = sha256 ? { sha256 } : {}
      return { metadata, size: 0 }
    })
  }

  async uploadStream(
    source: AsyncIterable<Buffer>,
    filename: string,
    options: TransferOptions & { metadata?: Record<string, string> } = {},
  ): Promise<{ size: number }> {
    const place = this.#place(filename)
    return this.#write(place, options, async (file) => {
      // One write at a time, each finished before the next chunk is asked for: the chunks are
      // borrowed (a write stream would queue them and ask for more).
      let size = 0
      for await (const chunk of source) {
        if (options.signal?.aborted) throw new Error('aborted') // #explain names the reason
        await writeAt(file, chunk, size)
        size += chunk.length
        options.onProgress?.(size)
      }
      return { metadata: options.metadata ?? {}, size }
    })
  }

  /**
   * Writes a new partial file (a fresh random name, created exclusively) beside the object and
   * renames it over the object at the end: a reader never sees half an object, and a rename
   * replaces a symlink at the object's name instead of writing through it.
   */
  async #write(
    place: Place,
    options: TransferOptions,
    fill: (file: FileHandle) => Promise<{ metadata: Record<string, string>; size: number }>,
  ): Promise<{ size: number }> {
    let folder: FileHandle | undefined
    let partial: string | undefined
    try {
      folder = await this.#openFolder(place, true)
      options.onRequest?.()
      partial = partialName(place.name)
      const file = await open(at(folder, partial), NEW_FILE, 0o600)
      let written: { metadata: Record<string, string>; size: number }
      try {
        written = await fill(file)
      } finally {
        await file.close()
      }
      await rename(at(folder, partial), at(folder, place.name))
      partial = undefined
      await this.#writeMetadata(folder, place.name, written.metadata)
      return { size: written.size }
    } catch (error) {
      if (folder && partial) await rm(at(folder, partial), { force: true })
      throw this.#explain(error, `upload of ${place.key}`, options.signal)
    } finally {
      await folder?.close()
    }
  }

  async storeChecksum(filename: string, sha256: string, metadata: Record<string, string>): Promise<void> {
    const place = this.#place(filename)
    const folder = await this.#openFolder(place, false)
    try {
      await this.#writeMetadata(folder, place.name, { ...metadata, sha256 })
    } finally {
      await folder.close()
    }
  }

  async read(filename: string, options: TransferOptions = {}): Promise<ObjectReader> {
    const place = this.#place(filename)
    let folder: FileHandle | undefined
    try {
      folder = await this.#openFolder(place, false)
      options.onRequest?.()
      const file = await open(at(folder, place.name), EXISTING_FILE).catch((error: { code?: string }) => {
        if (error.code === 'ELOOP') throw new JobError(`${place.key} is a symlink; LOCAL storage does not follow links to objects`)
        throw error
      })
      try {
        const info = await file.stat()
        if (!info.isFile()) throw new JobError(`${place.key} is not a file`)
        const metadata = await this.#readMetadata(folder, place.name)
        return { sha256: metadata.sha256, size: info.size, metadata, chunks: file.createReadStream({ signal: options.signal }) }
      } catch (error) {
        await file.close()
        throw error
      }
    } catch (error) {
      throw this.#explain(error, `download of ${place.key}`, options.signal)
    } finally {
      await folder?.close()
    }
  }

  /** Object metadata (the SHA-256 and the stream format) in a hidden file beside the object, replaced by a rename. */
  async #writeMetadata(folder: FileHandle, name: string, metadata: Record<string, string>): Promise<void> {
    const partial = metadataPartialName(name)
    try {
      const file = await open(at(folder, partial), NEW_FILE, 0o600)
      try {
        await file.writeFile(JSON.stringify(metadata))
      } finally {
        await file.close()
      }
      await rename(at(folder, partial), at(folder, metadataName(name)))
    } catch (error) {
      await rm(at(folder, partial), { force: true })
      throw error
    }
  }

  async #readMetadata(folder: FileHandle, name: string): Promise<Record<string, string>> {
    try {
      const file = await open(at(folder, metadataName(name)), EXISTING_FILE)
      try {
        const info = await file.stat()
        if (!info.isFile() || info.size > MAX_METADATA_BYTES) return {}
        return JSON.parse(await file.readFile('utf8')) as Record<string, string>
      } finally {
        await file.close()
      }
    } catch {
      return {} // an object written before metadata existed, or by hand
    }
  }

  async download(filename: string, file: FileHandle, options: TransferOptions = {}): Promise<Downloaded> {
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
      await pipeline(tapped(), new FileSink(file, 0, () => {}), { signal: options.signal })
      return { size, sha256: object.sha256 }
    } catch (error) {
      throw this.#explain(error, `download of ${this.#prefix}${filename}`, options.signal)
    }
  }

  async abandon(filename: string): Promise<void> {
    const place = this.#place(filename)
    let folder: FileHandle
    try {
      folder = await this.#openFolder(place, false)
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return
      throw error
    }
    try {
      for (const entry of await readdir(`/proc/self/fd/${folder.fd}`)) {
        if (isLeftOver(entry, place.name)) await rm(at(folder, entry), { force: true })
      }
    } finally {
      await folder.close()
    }
  }

  /**
   * Removes the destination folder's orphaned metadata files older than the grace (garbage.ts).
   * Its folder is opened as every other (one folder at a time, proved inside the root); one that
   * does not exist yet holds nothing. Never throws.
   */
  async collectGarbage(options: GarbageOptions): Promise<Reclaimed> {
    const parts = this.#prefix.split('/')
    const place: Place = { key: this.#prefix, folders: parts.slice(0, -1), name: parts.at(-1) as string }
    let folder: FileHandle
    try {
      if (place.folders.some((p) => p === '..' || p === '.' || p === '')) throw new JobError(`the prefix would leave local_storage_root`)
      folder = await this.#openFolder(place, false)
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return { objects: 0, bytes: 0, problems: [] }
      return { objects: 0, bytes: 0, problems: [this.#explain(error, `clean-up of ${this.location}`, undefined).message] }
    }
    try {
      return await removeOrphanedMetadata(folder, place.name, options, this.location)
    } finally {
      await folder.close()
    }
  }

  #explain(error: unknown, what: string, signal: AbortSignal | undefined): JobError {
    if (signal?.aborted) return new JobError(String(signal.reason), { cause: error })
    if (error instanceof JobError) return new JobError(`${what} failed: ${error.message}`, { cause: error })
    const code = (error as { code?: string }).code
    if (code === 'ENOENT') return new JobError(`${what} failed: no such object in ${this.location}`, { cause: error })
    return new JobError(`${what} failed in ${this.location}: ${(error as Error).message}`, { cause: error })
  }
}

/** The backup file read without following a link at its name, hanging on a FIFO, or taking a second link's file (openBackupFile). */
function createReadStreamNoFollow(path: string): AsyncIterable<Buffer> {
  return (async function* () {
    const file = await openBackupFile(path)
    try {
      yield* file.createReadStream()
    } finally {
      await file.close()
    }
  })()
}
