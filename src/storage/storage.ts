// The one interface every storage backend implements. No backend knows about jobs, and no job
// code knows a backend's protocol.
import type { Config } from '../config.ts'
import type { StorageDestination } from '../jobs/request.ts'
import { LocalStorage } from './local.ts'
import { S3Storage } from './s3.ts'
import { JobError } from '../errors.ts'

/** The agent settings a backend may use (src/config.ts). */
export type StorageSettings = Pick<Config, 'swiftRegion' | 'swiftSegmentBytes' | 'swiftSegmentThresholdBytes' | 'storageRetries' | 'localStorageRoot'>

export interface TransferOptions {
  /** Aborts the transfer (a cancelled job); the backend removes what it wrote. */
  signal?: AbortSignal | undefined
  /** Called for every request attempt, retries included (the polling body's `attempts`). */
  onRequest?: () => void
}

export interface Storage {
  /** Where objects go, for messages: `s3://bucket/prefix` or `swift container`. */
  readonly location: string
  /** Streams the file at `path` to the object for `filename`; memory does not grow with size. */
  upload(path: string, filename: string, options?: TransferOptions): Promise<void>
  /** Streams the object for `filename` into the file at `targetPath` (created or truncated). */
  download(filename: string, targetPath: string, options?: TransferOptions): Promise<{ size: number }>
  /**
   * Removes what an interrupted upload of `filename` left behind (an unfinished multipart
   * upload, orphaned segments), after an agent restart. Never touches a completed object.
   */
  abandon?(filename: string): Promise<void>
}

export function storageFor(destination: StorageDestination & { filenamePrefix: string }, settings: StorageSettings): Storage {
  switch (destination.type) {
    case 'S3':
      return new S3Storage(destination, destination.filenamePrefix, settings)
    case 'LOCAL':
      return new LocalStorage(settings.localStorageRoot, destination.filenamePrefix)
    case 'SWIFT':
      throw new JobError('SWIFT destinations are not supported by this agent build yet')
  }
}
