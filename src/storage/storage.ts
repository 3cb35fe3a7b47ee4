// The one interface every storage backend implements. No backend knows about jobs, and no job
// code knows a backend's protocol.
import type { FileHandle } from 'node:fs/promises'
import type { Config } from '../config.ts'

/** The agent settings a backend may use (src/config.ts). */
export type StorageSettings = Pick<
  Config,
  'swiftRegion' | 'swiftSegmentBytes' | 'swiftSegmentThresholdBytes' | 'storageRetries' | 'localStorageRoot'
>

export interface TransferOptions {
  /** Aborts the transfer (a cancelled job); the backend removes what it wrote. */
  signal?: AbortSignal | undefined
  /** Called for every request attempt, retries included (the polling body's `attempts`). */
  onRequest?: () => void
  /** Called as bytes move, with the total so far (the polling body's `progress`). */
  onProgress?: (bytesDone: number) => void
  /**
   * Upload: the SHA-256 (hex) of the whole object, stored with it (S3 `sha256` metadata, Swift
   * `X-Object-Meta-Sha256`). A promise while it is still being computed: a backend that stores
   * it last (a Swift Static Large Object, on its manifest) sends the data meanwhile, the others
   * wait for it before they start. A rejection fails the upload (and leaves nothing behind).
   */
  sha256?: string | Promise<string>
  /**
   * Download: every chunk as it is written, in order (to hash what arrives). The chunk may be a
   * view of a buffer the backend reuses (Swift, src/storage/http/kept-buffer-get.ts): use it during
   * the call, copy what must outlive it.
   */
  onChunk?: (chunk: Buffer) => void
}

export interface Downloaded {
  size: number
  /** The SHA-256 stored with the object, if it has one (older backups do not); the caller checks it. */
  sha256?: string | undefined
}

export interface ObjectReader {
  sha256: string | undefined
  size: number | undefined
  /** User metadata stored with the object (S3 `x-amz-meta-*`, Swift `X-Object-Meta-*`), lower-case keys. */
  metadata: Record<string, string>
  chunks: AsyncIterable<Buffer>
}

export interface GarbageOptions {
  /** Only what is older than this is removed (storage_gc_grace_hours). */
  graceMs: number
  /** Listing pages at most, over everything the pass lists. */
  maxPages: number
  /** `Date.now()` value after which the pass stops where it is. */
  deadline: number
  signal?: AbortSignal | undefined
  /** Objects an upload of this agent writes right now: whatever belongs to them is never touched. */
  uploadingNow?: (object: string) => boolean
}

/** What a garbage pass reclaimed, and what it could not. */
export interface Reclaimed {
  objects: number
  bytes: number
  /** Messages a user can act on (no secrets); the pass went on after each. */
  problems: string[]
}

export interface Storage {
  /** Where objects go, for messages: `s3://bucket/prefix` or `swift container`. */
  readonly location: string
  /**
   * Loads the backend's code ahead of its first request (LazyStorage): a streamed backup calls it
   * when the pipe opens, so the script's first bytes do not wait for the backend's code to load.
   */
  prepare?(): Promise<void>
  /** Streams the file at `path` to the object for `filename`; memory does not grow with size. */
  upload(path: string, filename: string, options?: TransferOptions): Promise<void>
  /**
   * Streams the object for `filename` into `file` from its start. The caller creates the file
   * (exclusively, never through a link: src/jobs/directory.ts) and closes it; no backend opens a
   * download target by its path.
   * When the object has a stored SHA-256 (`Downloaded.sha256`) the caller must compare it with
   * the digest of the chunks it got through `onChunk`: that check covers the whole object end to
   * end, so a backend need not check the bytes again against its own digests (Swift's MD5s).
   * Objects without one are checked by the backend where the store gives it a digest.
   */
  download(filename: string, file: FileHandle, options?: TransferOptions): Promise<Downloaded>
  /**
   * Removes what an interrupted upload of `filename` left behind (an unfinished multipart
   * upload, orphaned segments), after an agent restart. Never touches a completed object.
   */
  abandon?(filename: string): Promise<void>
  /**
   * Storage hygiene after a successful backup (issue 17): removes what earlier uploads left
   * behind under this destination and is older than `graceMs` (Swift segments whose manifest is
   * gone, S3 multipart uploads never completed or aborted, LOCAL orphaned metadata files). Never
   * touches a completed object, another object's segments, or anything younger than the grace (an
   * upload in progress). Bounded: at most `maxPages` listing pages and until `deadline`
   * (`Date.now()` ms); what it did not reach waits for the next backup. Never throws for what it
   * could not remove: problems are returned as messages.
   */
  collectGarbage?(options: GarbageOptions): Promise<Reclaimed>
  /**
   * Uploads a stream of unknown length as the object for `filename` (part or segment sizes grow
   * as it goes, memory stays bounded). On any failure or abort nothing is left behind. The
   * source's chunks are borrowed: each is valid until the next is asked for (copy what you keep).
   */
  uploadStream?(
    source: AsyncIterable<Buffer>,
    filename: string,
    options?: TransferOptions & { metadata?: Record<string, string> },
  ): Promise<{ size: number }>
  /** Opens the object for reading as a stream (streamed restores). */
  read?(filename: string, options?: TransferOptions): Promise<ObjectReader>
  /**
   * After a streamed upload: stores its SHA-256 (for a version-2 `.osb` object the value of its
   * trailer) and metadata where that is cheap (Swift: a POST; LOCAL: the sidecar file). S3 does
   * nothing: changing metadata there copies the object, and the trailer carries the digest.
   */
  storeChecksum?(filename: string, sha256: string, metadata: Record<string, string>): Promise<void>
}
