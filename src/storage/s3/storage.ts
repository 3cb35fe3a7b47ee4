// S3 (AWS or any S3-compatible server): streaming multipart upload from disk or from a stream,
// streaming download. The requests themselves are client.ts's.
import type { FileHandle } from 'node:fs/promises'
import { JobError } from '../../errors.ts'
import type { S3Destination } from '../../jobs/request.ts'
import type { Downloaded, GarbageOptions, ObjectReader, Reclaimed, Storage, StorageSettings, TransferOptions } from '../storage.ts'
import { fileRangeBody, openBackupFile, ReadBuffers } from '../files/backup-file.ts'
import { digestFile } from '../files/digest.ts'
import { growingPartSize, parts, type Part } from '../files/parts.ts'
import { TransportError } from '../http/client.ts'
import { S3Client, type Body } from './client.ts'
import { downloadObject, readObject } from './download.ts'
import { abortStaleUploads } from './garbage.ts'
import { S3Error } from './errors.ts'

const MIN_PART_BYTES = 8 * 1024 * 1024
const MAX_PARTS = 10_000
/** A file's parts in flight at once (read from disk as they are sent: no memory per part). */
const UPLOAD_CONCURRENCY = 4
/**
 * A stream's parts are held in memory until S3 has answered for them (SigV4 signs a part's
 * SHA-256 before its first byte, and a retry sends the bytes again), and the next part fills only
 * once a buffer is free: STREAM_CONCURRENCY buffers in all. They are all an S3 stream costs above
 * a LOCAL one, and on the lab the upload time followed the bytes in flight (1 GiB unpaced, release
 * agent, three rounds each: 12 MiB × 2 6.5-6.7 s, peak 104 MB; 8 MiB × 3 6.3-6.7 s, 104 MB;
 * 6 MiB × 3 6.8-7.3 s, 98 MB; 5 MiB × 4 6.9-7.2 s, 100 MB; 8 MiB × 2 7.1-7.5 s, 96 MB). Three of
 * 6 MiB: streaming figure 1.06× at a peak of 103 MB, where 12 MiB × 2 gave 1.16× at 110 MB and
 * 8 MiB × 2 1.10-1.11× at 101 MB; three in flight also hide more of a distant S3's latency.
 * Three of 5 MiB, S3's smallest part, since the agent collects during a transfer (decision 10 in
 * docs/PERFORMANCE.md): peak of a 4 GiB stream 98.9 -> 95.9 MB, the streamed upload as fast
 * (7.7-8.5 s a paced GiB against 8.2-9.0).
 */
const STREAM_CONCURRENCY = 3
const STREAM_PART_BYTES = 5 * 1024 * 1024

export class S3Storage implements Storage {
  readonly location: string
  readonly #d: S3Destination
  readonly #prefix: string
  readonly #client: S3Client
  readonly #retries: number

  constructor(destination: S3Destination, prefix: string, settings: Pick<StorageSettings, 'storageRetries'>) {
    this.#retries = settings.storageRetries
    this.#d = destination
    this.#prefix = prefix
    this.location = `s3://${destination.bucket}/${prefix} at ${destination.endpointUrl}`
    this.#client = new S3Client(
      {
        endpoint: destination.endpoint,
        endpointUrl: destination.endpointUrl,
        bucket: destination.bucket,
        region: destination.region,
        credentials: { accessKeyId: destination.authKey, secretAccessKey: destination.authSecret },
      },
      settings.storageRetries,
    )
  }

  #key(filename: string): string {
    return this.#prefix + filename
  }

  /**
   * A multipart upload streamed from the file: each part's SHA-256 (which SigV4 signs) is computed
   * beforehand by a digest worker reading the file, then the part is sent from the file range, so
   * no part is held in memory. Up to UPLOAD_CONCURRENCY parts in flight, each retried by reading
   * its range again. A file up to one part is a single PUT.
   */
  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    // S3 fixes an object's metadata when its (multipart) upload is created: the digest first.
    const sha256 = await options.sha256
    const file = await openBackupFile(path)
    try {
      const { size } = await file.stat()
      const partSize = Math.max(MIN_PART_BYTES, Math.ceil(size / MAX_PARTS))
      await this.#putParts(fileParts(file, path, size, partSize, options.signal), filename, {
        ...options,
        metadata: sha256 ? { sha256 } : undefined,
      })
    } finally {
      await file.close()
    }
  }

  /** Streams the object to disk (download.ts). */
  async download(filename: string, file: FileHandle, options: TransferOptions = {}): Promise<Downloaded> {
    const key = this.#key(filename)
    try {
      return await downloadObject(this.#client, key, file, this.#retries, options)
    } catch (error) {
      throw this.#failure(error, `download of ${key}`, options.signal)
    }
  }

  /** Opens the object for reading (a streamed restore); a connection that breaks mid-body is resumed. */
  async read(filename: string, options: TransferOptions = {}): Promise<ObjectReader> {
    const key = this.#key(filename)
    const what = `download of ${key}`
    let object: ObjectReader
    try {
      object = await readObject(this.#client, key, this.#retries, options)
    } catch (error) {
      throw this.#failure(error, what, options.signal)
    }
    const failure = (error: unknown) => this.#failure(error, what, options.signal)
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        yield* object.chunks
      } catch (error) {
        throw failure(error)
      }
    }
    return { ...object, chunks: chunks() }
  }

  /**
   * A multipart upload of a stream of unknown length. Parts start at 6 MiB and double every
   * 1000 parts (6 MiB × 1000 … 3 GiB × 1000 reach S3's own 5 TiB), up to STREAM_CONCURRENCY in
   * flight, and the next part fills only once a buffer is free: memory is STREAM_CONCURRENCY
   * parts. A stream smaller than one part is a single PUT.
   */
  async uploadStream(
    source: AsyncIterable<Buffer>,
    filename: string,
    options: TransferOptions & { metadata?: Record<string, string> } = {},
  ): Promise<{ size: number }> {
    return this.#putParts(bufferedParts(parts(source, streamPartSize, undefined, { sha256: true })), filename, options, STREAM_CONCURRENCY)
  }

  /** Uploads numbered parts (the last one marked) as one object; on any failure or abort nothing is left. */
  async #putParts(
    source: AsyncIterable<UploadPart> | Iterable<UploadPart>,
    filename: string,
    options: TransferOptions & { metadata?: Record<string, string> | undefined },
    concurrency = UPLOAD_CONCURRENCY,
  ): Promise<{ size: number }> {
    const key = this.#key(filename)
    const client = this.#client
    const call = { signal: options.signal, onRequest: options.onRequest }
    let uploadId: string | undefined
    const done: { number: number; etag: string }[] = []
    const inFlight = new Set<Promise<void>>()
    let failure: unknown
    let size = 0
    let uploaded = 0
    try {
      for await (const part of source) {
        if (failure !== undefined) throw failure
        if (options.signal?.aborted) throw new JobError(String(options.signal.reason))
        size += part.size
        if (part.number === 1 && part.last) {
          try {
            await client.putObject(key, part.body, await part.sha256, options.metadata, call)
          } finally {
            part.release?.()
          }
          options.onProgress?.(size)
          return { size }
        }
        uploadId ??= await client.createMultipartUpload(key, options.metadata, call)
        const id = uploadId
        const sending: Promise<void> = part.sha256
          .then((sha256) => client.uploadPart(key, id, part.number, part.body, sha256, call))
          .then((etag) => {
            done.push({ number: part.number, etag })
            uploaded += part.size
            options.onProgress?.(uploaded)
          })
          .catch((error: unknown) => {
            failure ??= error
          })
          .finally(() => {
            inFlight.delete(sending)
            part.release?.() // settled, retries included: the buffer is free for a later part
          })
        inFlight.add(sending)
        if (inFlight.size >= concurrency) await Promise.race(inFlight)
      }
      await Promise.all(inFlight)
      if (failure !== undefined) throw failure
      done.sort((a, b) => a.number - b.number)
      await client.completeMultipartUpload(key, uploadId as string, done, call)
      return { size }
    } catch (error) {
      await Promise.allSettled(inFlight)
      // Without the job's signal: a cancelled upload is removed too.
      if (uploadId) await client.abortMultipartUpload(key, uploadId, {}).catch(() => {})
      throw this.#failure(error, `upload of ${key}`, options.signal)
    }
  }

  /**
   * Nothing to store: S3 fixes metadata when an upload starts, before a stream's digest exists,
   * and changing it afterwards means copying the whole object. A streamed (`.osb` version 2)
   * object carries its SHA-256 as its trailer instead, and its metadata (set at the start:
   * `sha256-location: trailer`) says so (docs/STREAM_FORMAT.md).
   */
  async storeChecksum(): Promise<void> {}

  async abandon(filename: string): Promise<void> {
    const key = this.#key(filename)
    try {
      for (const upload of await this.#client.listMultipartUploads(key, {})) {
        if (upload.key === key) await this.#client.abortMultipartUpload(key, upload.uploadId, {})
      }
    } catch (error) {
      throw this.#failure(error, `removal of the unfinished upload of ${key}`, undefined)
    }
  }

  /** Aborts the multipart uploads under the prefix older than the grace (garbage.ts); never throws. */
  async collectGarbage(options: GarbageOptions): Promise<Reclaimed> {
    return abortStaleUploads(this.#client, this.#prefix, options, (error, what) => this.#explain(error, what).message)
  }

  /** A cancelled transfer says why it stopped; any other failure is explained. */
  #failure(error: unknown, what: string, signal: AbortSignal | undefined): JobError {
    if (signal?.aborted) return new JobError(String(signal.reason), { cause: error })
    return this.#explain(error, what)
  }

  /** Turns an answer or a network failure into a message an operator can act on. */
  #explain(error: unknown, what: string): JobError {
    if (error instanceof JobError) return error
    const d = this.#d
    const where = `bucket ${d.bucket} at ${d.endpointUrl}`
    const refused = (why: string) =>
      new JobError(`${what} failed: ${where} refused the credentials of access key ${d.authKey} (${why}); check authKey and authSecret`, {
        cause: error,
      })
    if (error instanceof S3Error && error.code !== undefined) {
      switch (error.code) {
        case 'NoSuchBucket':
          return new JobError(`${what} failed: ${where} does not exist`, { cause: error })
        case 'NoSuchKey':
          return new JobError(`${what} failed: the object does not exist in ${where}`, { cause: error })
        case 'InvalidAccessKeyId':
        case 'SignatureDoesNotMatch':
        case 'AccessDenied':
          return refused(error.code)
      }
      return new JobError(`${what} failed: ${where} answered ${error.status} ${error.code}: ${error.message}`.replace(/\s+/g, ' '), {
        cause: error,
      })
    }
    // An answer that is not S3's XML (an HTML page from a proxy, or from the server's own auth
    // layer): its status still says what happened.
    if (error instanceof S3Error) {
      if (error.status === 401 || error.status === 403) return refused(`HTTP ${error.status}`)
      return new JobError(`${what} failed: ${where} answered HTTP ${error.status} with a body that is not an S3 error document`, {
        cause: error,
      })
    }
    const code = (error as { code?: string }).code
    if (
      code === 'ECONNREFUSED' ||
      code === 'ENOTFOUND' ||
      code === 'EAI_AGAIN' ||
      code === 'EHOSTUNREACH' ||
      code === 'ENETUNREACH' ||
      code === 'ECONNRESET' ||
      code === 'EPIPE'
    ) {
      return new JobError(`${what} failed: cannot reach the S3 endpoint ${d.endpointUrl} (${code})`, { cause: error })
    }
    if (code === 'ETIMEDOUT' || code === 'CONNECT_TIMEOUT' || code === 'IDLE_TIMEOUT') {
      return new JobError(`${what} failed: the S3 endpoint ${d.endpointUrl} did not answer in time`, { cause: error })
    }
    const message =
      error instanceof TransportError ? error.message.replace(/^[^ ]*: /, '') : error instanceof Error ? error.message : String(error)
    return new JobError(`${what} failed at ${d.endpointUrl}: ${message}`, { cause: error })
  }
}

/** One part of an upload as the part loop sends it. */
interface UploadPart {
  number: number
  size: number
  last: boolean
  /** The bytes in memory (a streamed upload's part), or the file range, read again per attempt. */
  body: Body
  /** The body's SHA-256 (hex), for the signature. */
  sha256: Promise<string>
  /** Hands a buffer back for a later part once the part has settled, retries included. */
  release?: (() => void) | undefined
}

/** A streamed upload's parts: buffers filled from the stream (files/parts.ts) and hashed as they filled, sent as they are. */
async function* bufferedParts(source: AsyncIterable<Part>): AsyncGenerator<UploadPart> {
  for await (const { number, data, last, sha256, release } of source) {
    yield { number, size: data.length, last, body: data, sha256: Promise.resolve(sha256 as string), release }
  }
}

/**
 * The file cut into parts of `partSize`, each sent from its range. Their SHA-256s are taken one
 * at a time by a digest worker (one worker's memory, not two), one part ahead of the part loop,
 * so a part's hash is ready by the time a slot frees. A file that ends early (something still
 * writes it) fails the upload rather than storing a short object: the digest reads fewer bytes
 * than planned, or the body does.
 */
function* fileParts(
  file: FileHandle,
  path: string,
  size: number,
  partSize: number,
  signal: AbortSignal | undefined,
): Generator<UploadPart> {
  const buffers = new ReadBuffers()
  let hashed: Promise<unknown> = Promise.resolve()
  const hash = (start: number): Promise<string> => {
    const length = Math.min(partSize, size - start)
    const digest = hashed.then(() => digestFile({ path, algorithm: 'sha256', range: { start, length }, signal }))
    hashed = digest.catch(() => {}) // the next hash waits for this one, not for its success
    return digest
  }
  let next = hash(0)
  for (let number = 1, start = 0; ; number++) {
    const length = Math.min(partSize, size - start)
    const sha256 = next
    sha256.catch(() => {}) // seen by the part loop when it sends the part; unobserved if it stopped first
    const end = start + length
    if (end < size) next = hash(end)
    yield { number, size: length, last: end >= size, body: fileRangeBody(file, path, start, length, buffers), sha256 }
    if (end >= size) return
    start = end
  }
}

/** 5 MiB × 1000, 10 MiB × 1000 … 2.5 GiB × 1000: 10,000 parts carry 4.88 TiB (S3's own limit: 5 TiB). */
const streamPartSize = growingPartSize(STREAM_PART_BYTES, 1000, 4 * 1024 * 1024 * 1024)
