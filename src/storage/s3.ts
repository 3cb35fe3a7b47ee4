// S3 (AWS or any S3-compatible server): streaming multipart upload from disk, streaming download.
import { open, type FileHandle } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { JobError } from '../errors.ts'
import type { S3Destination } from '../jobs/request.ts'
import type { Downloaded, ObjectReader, Storage, StorageSettings, TransferOptions } from './storage.ts'
import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, httpAgent, httpsAgent } from './agents.ts'
import { openBackupFile } from './file-range.ts'
import { FileRangeBody, ReadBuffers } from './file-body.ts'
import { digestFile } from './file-digest.ts'
import { FileSink } from './file-sink.ts'
import { growingPartSize, parts, type Part } from './parts.ts'
import { downloadObject, isWrongRegion, S3AnswerError } from './s3-download.ts'
import { isTransientS3Error } from './s3-transient.ts'

const MIN_PART_BYTES = 8 * 1024 * 1024
const MAX_PARTS = 10_000
/** A file's parts in flight at once (read from disk as they are sent: no memory per part). */
const UPLOAD_CONCURRENCY = 4
/**
 * A stream's parts: held in memory until sent, about STREAM_PART_BYTES × (this + 1) in all.
 * Two parts of 12 MiB rather than four of 8 MiB (docs/PERFORMANCE.md): less in flight and a third
 * fewer requests, which is what mattered. Every request leaves ~270 KB of SDK garbage that lives
 * as long as the request, so it reaches V8's old generation (the peak RSS of a 4 GiB stream grew
 * with the stream's length), and CompleteMultipartUpload takes time per part on Swift's s3api
 * (1 GiB: 0.42 s for 128 parts). Measured on the lab, throughput did not drop.
 */
const STREAM_CONCURRENCY = 2
const STREAM_PART_BYTES = 12 * 1024 * 1024
const AWS_ENDPOINT = /^(https?:\/\/)?s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?\/?$/i

export class S3Storage implements Storage {
  readonly location: string
  readonly #d: S3Destination
  readonly #prefix: string
  readonly #client: S3Client

  readonly #retries: number
  /** A custom endpoint, buckets addressed by path (AWS itself: virtual-hosted, through the SDK only). */
  readonly #pathStyle: boolean
  /** Called by the attempt-counting middleware; set per transfer. */
  #onRequest: (() => void) | undefined

  constructor(destination: S3Destination, prefix: string, settings: Pick<StorageSettings, 'storageRetries'>) {
    this.#retries = settings.storageRetries
    this.#d = destination
    this.#prefix = prefix
    this.location = `s3://${destination.bucket}/${prefix} at ${destination.endpointUrl}`
    const aws = AWS_ENDPOINT.test(destination.endpoint)
    this.#pathStyle = !aws
    this.#client = new S3Client({
      // AWS itself: let the SDK pick the regional, virtual-hosted endpoint. Anything else is a
      // custom server, addressed path-style (no DNS per bucket needed).
      ...(aws ? {} : { endpoint: destination.endpointUrl, forcePathStyle: true }),
      // No region given: start from us-east-1 (what servers that do not say expect) and let the
      // SDK follow the bucket's real region from the redirect.
      region: destination.region ?? 'us-east-1',
      followRegionRedirects: true,
      credentials: { accessKeyId: destination.authKey, secretAccessKey: destination.authSecret },
      // The SDK's default CRC trailers use aws-chunked uploads that many S3-compatible servers
      // (Swift's s3api among them) reject with 501; send checksums only where S3 requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        httpAgent,
        httpsAgent,
        connectionTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: IDLE_TIMEOUT_MS,
      }),
      // The SDK's standard retry strategy: transient failures (connection errors, timeouts, 5xx,
      // 429/503 throttling) are retried per request, and so per part, with exponential backoff
      // and jitter; permanent ones (403, 404, a missing bucket) fail at once.
      maxAttempts: settings.storageRetries + 1,
      // The SDK warns on the console when a request with a stream body fails (it cannot retry
      // those); the part loop retries them itself. Everything else as with the SDK's default
      // logger: its other warnings on the console, its request logs (inputs, errors) dropped.
      logger: QUIET_SDK_LOGGER,
    })
    // Runs inside the retry loop, so it sees every attempt, and gets the raw answer. A request
    // with a body that was refused does not give its connection back to the pool: Swift's s3api
    // (eventlet) may answer before it has read the body and then take the rest of the body for
    // the next request on that connection, which then got a 400 that is not S3's XML.
    this.#client.middlewareStack.add(
      (next) => async (args) => {
        this.#onRequest?.()
        const result = await next(args)
        const answer = (result as { response?: RawAnswer }).response
        if ((args.request as { body?: unknown }).body !== undefined && (answer?.statusCode ?? 0) >= 300 && answer?.body?.req) answer.body.req.shouldKeepAlive = false
        return result
      },
      { step: 'deserialize', name: 'countAttempts' },
    )
  }

  #key(filename: string): string {
    return this.#prefix + filename
  }

  /**
   * A multipart upload streamed from the file: each part's SHA-256 (which SigV4 signs) is computed
   * beforehand by a digest worker reading the file, then the part is sent as a stream of the file
   * range, so no part is held in memory (8 MiB buffers and WebCrypto's copy of each, ~60 MB with 4
   * parts in flight). Up to UPLOAD_CONCURRENCY parts in flight, each retried with a fresh stream.
   * A file up to one part is a single PUT.
   */
  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    // S3 fixes an object's metadata when its (multipart) upload is created: the digest first.
    const sha256 = await options.sha256
    const file = await openBackupFile(path)
    try {
      const { size } = await file.stat()
      const partSize = Math.max(MIN_PART_BYTES, Math.ceil(size / MAX_PARTS))
      await this.#putParts(fileParts(file, path, size, partSize, options.signal), filename, { ...options, metadata: sha256 ? { sha256 } : undefined })
    } finally {
      await file.close()
    }
  }

  /**
   * Streams the object to disk: from a custom endpoint with a GET of our own into kept buffers
   * (s3-download.ts), from AWS (virtual-hosted buckets, regions to follow) through the SDK (see
   * read()), and through the SDK too when the bucket turns out to be in another region.
   */
  async download(filename: string, file: FileHandle, options: TransferOptions = {}): Promise<Downloaded> {
    if (this.#pathStyle) {
      const region = this.#d.region ?? 'us-east-1'
      const target = { endpointUrl: this.#d.endpointUrl, bucket: this.#d.bucket, key: this.#key(filename), region, credentials: { accessKeyId: this.#d.authKey, secretAccessKey: this.#d.authSecret } }
      try {
        return await downloadObject(target, file, this.#retries, options)
      } catch (error) {
        if (!isWrongRegion(error, region)) {
          if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
          throw this.#explain(error, `download of ${target.key}`)
        }
      }
      await file.truncate(0) // the SDK's download starts over
    }
    return this.#downloadWithSdk(filename, file, options)
  }

  async #downloadWithSdk(filename: string, file: FileHandle, options: TransferOptions): Promise<Downloaded> {
    const object = await this.read(filename, options)
    let size = 0
    await pipeline(
      object.chunks,
      new FileSink(file, 0, (chunk) => {
        size += chunk.length
        options.onChunk?.(chunk)
        options.onProgress?.(size)
      }),
    )
    return { size, sha256: object.sha256 }
  }

  /**
   * Opens the object for reading. A connection that breaks mid-body is resumed with a ranged GET
   * from the bytes already passed on (the SDK itself only retries until the headers arrive).
   */
  async read(filename: string, options: TransferOptions = {}): Promise<ObjectReader> {
    const key = this.#key(filename)
    this.#onRequest = options.onRequest
    const get = async (from: number) => {
      try {
        return await this.#client.send(
          new GetObjectCommand({ Bucket: this.#d.bucket, Key: key, ...(from > 0 ? { Range: `bytes=${from}-` } : {}) }),
          { abortSignal: options.signal },
        )
      } catch (error) {
        if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
        throw this.#explain(error, `download of ${key}`)
      }
    }
    const first = await get(0)
    const expected = first.ContentLength
    const retries = this.#retries
    const explain = (error: unknown) => this.#explain(error, `download of ${key}`)
    async function* chunks(): AsyncGenerator<Buffer> {
      let body = first.Body as Readable
      let passed = 0
      for (let resumes = 0; ; ) {
        try {
          for await (const chunk of body) {
            passed += (chunk as Buffer).length
            yield chunk as Buffer
          }
          if (expected !== undefined && passed !== expected) throw new JobError(`download of ${key} was cut short: got ${passed} of ${expected} bytes`)
          return
        } catch (error) {
          if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
          if (error instanceof JobError || expected === undefined || resumes >= retries) throw explain(error)
          await backoff(resumes++)
          body = (await get(passed)).Body as Readable
        }
      }
    }
    return { sha256: first.Metadata?.sha256, size: expected, metadata: first.Metadata ?? {}, chunks: chunks() }
  }

  /**
   * A multipart upload of a stream of unknown length. Parts start at 12 MiB and double every
   * 1000 parts (12 MiB × 1000 … 4 GiB × 1000: no cap below S3's own 5 TiB), up to
   * STREAM_CONCURRENCY in flight, so memory is about (concurrency + 1) parts. A stream smaller
   * than one part is a single PUT.
   */
  async uploadStream(source: AsyncIterable<Buffer>, filename: string, options: TransferOptions & { metadata?: Record<string, string> } = {}): Promise<{ size: number }> {
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
    const bucket = this.#d.bucket
    this.#onRequest = options.onRequest
    const send = { abortSignal: options.signal }
    let uploadId: string | undefined
    const done: { PartNumber: number; ETag: string }[] = []
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
            await this.#sendBody(part, options.signal, (Body, sha256, abortSignal) =>
              this.#client.send(withPayloadHash(new PutObjectCommand({ Bucket: bucket, Key: key, Body, ContentLength: part.size, Metadata: options.metadata }), sha256), { abortSignal }),
            )
          } finally {
            part.release?.()
          }
          options.onProgress?.(size)
          return { size }
        }
        uploadId ??= (await this.#client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: options.metadata }), send)).UploadId
        const { number } = part
        const partUpload = { Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: number, ContentLength: part.size }
        const sending: Promise<void> = this.#sendBody(part, options.signal, (Body, sha256, abortSignal) =>
          this.#client.send(withPayloadHash(new UploadPartCommand({ ...partUpload, Body }), sha256), { abortSignal }),
        )
          .then((r) => {
            done.push({ PartNumber: number, ETag: r.ETag as string })
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
      done.sort((a, b) => a.PartNumber - b.PartNumber)
      await this.#client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done } }), send)
      return { size }
    } catch (error) {
      await Promise.allSettled(inFlight)
      if (uploadId) await this.#client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => {})
      if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
      throw this.#explain(error, `upload of ${key}`)
    }
  }

  /**
   * Sends a part's body with its SHA-256 known beforehand (`withPayloadHash`: the SDK signs it and
   * hashes no part on the event loop): a buffer as it is (the SDK retries with it), a stream
   * fresh for every attempt. The SDK does not retry a request with a stream body, so those
   * attempts are counted here, with the SDK's backoff and its choice of which failures are worth
   * another one.
   */
  async #sendBody<T>(
    part: UploadPart,
    signal: AbortSignal | undefined,
    send: (body: Buffer | Readable, sha256: string | undefined, abortSignal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    const sha256 = await part.sha256
    if (Buffer.isBuffer(part.body)) return send(part.body, sha256, signal)
    for (let attempt = 0; ; attempt++) {
      const body = part.body()
      // The SDK pipes the body into the request, and pipe() does not pass a read error on: the
      // request would wait for the missing bytes. A body that fails aborts its request instead.
      const bodyFailed = new AbortController()
      let bodyError: unknown
      body.on('error', (error) => {
        bodyError = error
        bodyFailed.abort(error)
      })
      try {
        return await send(body, sha256, signal ? AbortSignal.any([signal, bodyFailed.signal]) : bodyFailed.signal)
      } catch (error) {
        if (bodyError !== undefined) throw bodyError
        if (signal?.aborted || attempt >= this.#retries || !isTransientS3Error(error)) throw error
      } finally {
        body.destroy() // a failed attempt may leave it half read
      }
      await backoff(attempt)
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
    const listing = await this.#client.send(new ListMultipartUploadsCommand({ Bucket: this.#d.bucket, Prefix: key }))
    for (const upload of listing.Uploads ?? []) {
      if (upload.Key !== key || !upload.UploadId) continue
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#d.bucket, Key: key, UploadId: upload.UploadId }))
    }
  }

  /** Turns an SDK or network error into a message an operator can act on. */
  #explain(error: unknown, what: string): JobError {
    if (error instanceof JobError) return error
    const d = this.#d
    const where = `bucket ${d.bucket} at ${d.endpointUrl}`
    if (error instanceof S3ServiceException || (error instanceof S3AnswerError && error.$response === undefined)) {
      const status = error.$metadata.httpStatusCode
      switch (error.name) {
        case 'NoSuchBucket':
          return new JobError(`${what} failed: ${where} does not exist`, { cause: error })
        case 'NoSuchKey':
          return new JobError(`${what} failed: the object does not exist in ${where}`, { cause: error })
        case 'InvalidAccessKeyId':
        case 'SignatureDoesNotMatch':
        case 'AccessDenied':
          return new JobError(
            `${what} failed: ${where} refused the credentials of access key ${d.authKey} (${error.name}); check authKey and authSecret`,
            { cause: error },
          )
      }
      return new JobError(`${what} failed: ${where} answered ${status ?? ''} ${error.name}: ${error.message}`.replace(/\s+/g, ' '), { cause: error })
    }
    // An answer that is not S3's XML (an HTML page from a proxy, or from the server's own auth
    // layer): the SDK cannot parse it, but its status still says what happened.
    const status = (error as { $response?: { statusCode?: number } }).$response?.statusCode
    if (status === 401 || status === 403) {
      return new JobError(`${what} failed: ${where} refused the credentials of access key ${d.authKey} (HTTP ${status}); check authKey and authSecret`, { cause: error })
    }
    if (status !== undefined && status >= 300) {
      return new JobError(`${what} failed: ${where} answered HTTP ${status} with a body that is not an S3 error document`, { cause: error })
    }
    const code = (error as { code?: string }).code
    const name = (error as { name?: string }).name
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ECONNRESET') {
      return new JobError(`${what} failed: cannot reach the S3 endpoint ${d.endpointUrl} (${code})`, { cause: error })
    }
    if (name === 'TimeoutError' || code === 'ETIMEDOUT' || code === 'CONNECT_TIMEOUT' || code === 'IDLE_TIMEOUT') {
      return new JobError(`${what} failed: the S3 endpoint ${d.endpointUrl} did not answer in time`, { cause: error })
    }
    const message = error instanceof Error ? error.message : String(error)
    return new JobError(`${what} failed at ${d.endpointUrl}: ${message}`, { cause: error })
  }
}

/** One part of an upload as the part loop sends it. */
interface UploadPart {
  number: number
  size: number
  last: boolean
  /** The bytes in memory (a streamed upload's part), or a fresh stream of them per attempt. */
  body: Buffer | (() => Readable)
  /** A stream body's SHA-256 (hex), for the signature. */
  sha256?: Promise<string>
  /** Hands a buffer back for a later part once the part has settled, retries included. */
  release?: () => void
}

/** A streamed upload's parts: buffers filled from the stream (parts.ts) and hashed as they filled, sent as they are. */
async function* bufferedParts(source: AsyncIterable<Part>): AsyncGenerator<UploadPart> {
  for await (const { number, data, last, sha256, release } of source) {
    yield { number, size: data.length, last, body: data, sha256: sha256 === undefined ? undefined : Promise.resolve(sha256), release }
  }
}

/**
 * The file cut into parts of `partSize`, each sent as a stream of its range. Their SHA-256s are
 * taken one at a time by a digest worker (one worker's memory, not two), one part ahead of the
 * part loop, so a part's hash is ready by the time a slot frees. A file that ends early (something
 * still writes it) fails the upload rather than storing a short object: the digest reads fewer
 * bytes than planned, or the body stream does.
 */
function* fileParts(file: FileHandle, path: string, size: number, partSize: number, signal: AbortSignal | undefined): Generator<UploadPart> {
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
    const from = start
    yield { number, size: length, last: end >= size, body: () => new FileRangeBody(file, path, from, length, buffers), sha256 }
    if (end >= size) return
    start = end
  }
}

/** Sets the SigV4 payload hash of a request whose body is a stream: the SDK signs it instead of hashing the body. */
function withPayloadHash<C extends { middlewareStack: { add: (...args: never[]) => void } }>(command: C, sha256: string | undefined): C {
  if (sha256 === undefined) return command
  const add = command.middlewareStack.add as (
    middleware: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>,
    options: { step: 'build'; name: string },
  ) => void
  add(
    (next) => async (args) => {
      ;(args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = sha256
      return next(args)
    },
    { step: 'build', name: 'presetPayloadHash' },
  )
  return command
}

/** The SDK's raw answer as node:http gave it: `req.shouldKeepAlive = false` closes its connection once read. */
interface RawAnswer {
  statusCode?: number
  body?: { req?: { shouldKeepAlive?: boolean } }
}

const QUIET_SDK_LOGGER = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: (message: unknown) => {
    if (!String(message).includes('non-retryable streaming request')) console.warn(message)
  },
  error: () => {},
}

/** Exponential backoff with full jitter: up to 0.2 s, 0.4 s, 0.8 s … capped at 20 s. */
function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(20_000, 200 * 2 ** attempt)
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling))
}

/** 12 MiB × 1000, 24 MiB × 1000 … up to 4 GiB parts: 10,000 parts reach S3's own 5 TiB limit. */
const streamPartSize = growingPartSize(STREAM_PART_BYTES, 1000, 4 * 1024 * 1024 * 1024)
