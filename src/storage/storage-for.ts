// The storage for a job's destination: the backend's module is loaded on its first request, so
// this module and the interface (storage.ts) are all a job imports, and no backend imports this.
import type { FileHandle } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { StorageDestination } from '../jobs/request.ts'
import type { Downloaded, GarbageOptions, ObjectReader, Reclaimed, Storage, StorageSettings, TransferOptions } from './storage.ts'

/** What a loaded backend has: everything but `prepare` (LazyStorage's own); garbage collection where the backend does it. */
type Backend = Required<Omit<Storage, 'prepare' | 'collectGarbage'>> & Pick<Storage, 'collectGarbage'>

export function storageFor(destination: StorageDestination & { filenamePrefix: string }, settings: StorageSettings): Storage {
  const prefix = destination.filenamePrefix
  switch (destination.type) {
    case 'S3':
      return new LazyStorage(`s3://${destination.bucket}/${prefix} at ${destination.endpointUrl}`, () =>
        import('./s3/storage.ts').then((m) => new m.S3Storage(destination, prefix, settings)),
      )
    case 'LOCAL':
      return new LazyStorage(`local folder ${join(resolve(settings.localStorageRoot), prefix)}`, () =>
        import('./local/storage.ts').then((m) => new m.LocalStorage(settings.localStorageRoot, prefix)),
      )
    case 'SWIFT':
      return new LazyStorage(`swift container ${destination.containerName} at ${destination.authUrl}`, () =>
        import('./swift/storage.ts').then((m) => new m.SwiftStorage(destination, settings)),
      )
  }
}

/**
 * A backend whose module is loaded on its first request: an agent that never talks to one of
 * them does not load its code (when the AWS SDK was the S3 backend, loading the backends at start
 * cost a third of the start-up time and tens of MB). `location` is worded
 * as the backend words it, so messages read the same before it is loaded.
 */
class LazyStorage implements Required<Storage> {
  readonly location: string
  readonly #open: () => Promise<Backend>

  constructor(location: string, load: () => Promise<Backend>) {
    this.location = location
    let loaded: Promise<Backend> | undefined
    this.#open = () => (loaded ??= load())
  }

  async prepare(): Promise<void> {
    await this.#open()
  }

  async upload(path: string, filename: string, options?: TransferOptions): Promise<void> {
    return (await this.#open()).upload(path, filename, options)
  }

  async download(filename: string, file: FileHandle, options?: TransferOptions): Promise<Downloaded> {
    return (await this.#open()).download(filename, file, options)
  }

  async abandon(filename: string): Promise<void> {
    return (await this.#open()).abandon(filename)
  }

  async uploadStream(
    source: AsyncIterable<Buffer>,
    filename: string,
    options?: TransferOptions & { metadata?: Record<string, string> },
  ): Promise<{ size: number }> {
    return (await this.#open()).uploadStream(source, filename, options)
  }

  async read(filename: string, options?: TransferOptions): Promise<ObjectReader> {
    return (await this.#open()).read(filename, options)
  }

  async storeChecksum(filename: string, sha256: string, metadata: Record<string, string>): Promise<void> {
    return (await this.#open()).storeChecksum(filename, sha256, metadata)
  }

  async collectGarbage(options: GarbageOptions): Promise<Reclaimed> {
    return (await (await this.#open()).collectGarbage?.(options)) ?? { objects: 0, bytes: 0, problems: [] }
  }
}
