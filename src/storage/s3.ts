// S3 (AWS or any S3-compatible server): streaming multipart upload from disk, streaming download.
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { AbortMultipartUploadCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { JobError } from '../errors.ts'
import type { S3Destination } from '../jobs/request.ts'
import type { Downloaded, Storage, StorageSettings, TransferOptions } from './storage.ts'
import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, httpAgent, httpsAgent } from './agents.ts'
import { FileSink } from './file-sink.ts'

const MIN_PART_BYTES = 8 * 1024 * 1024
const MAX_PARTS = 10_000
/** Parts in flight at once: memory is about partSize × this. */
const UPLOAD_CONCURRENCY = 4
const AWS_ENDPOINT = /^(https?:\/\/)?s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?\/?$/i

export class S3Storage implements Storage {
  readonly location: string
  readonly #d: S3Destination
  readonly #prefix: string
  readonly #client: S3Client

  readonly #retries: number
  /** Called by the attempt-counting middleware; set per transfer. */
  #onRequest: (() => void) | undefined

  constructor(destination: S3Destination, prefix: string, settings: Pick<StorageSettings, 'storageRetries'>) {
    this.#retries = settings.storageRetries
    this.#d = destination
    this.#prefix = prefix
    this.location = `s3://${destination.bucket}/${prefix} at ${destination.endpointUrl}`
    const aws = AWS_ENDPOINT.test(destination.endpoint)
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
    })
    // Runs inside the retry loop, so it sees every attempt.
    this.#client.middlewareStack.add(
      (next) => async (args) => {
        this.#onRequest?.()
        return next(args)
      },
      { step: 'deserialize', name: 'countAttempts' },
    )
  }

  #key(filename: string): string {
    return this.#prefix + filename
  }

  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    const key = this.#key(filename)
    this.#onRequest = options.onRequest
    const { size } = await stat(path)
    const partSize = Math.max(MIN_PART_BYTES, Math.ceil(size / MAX_PARTS))
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#d.bucket,
        Key: key,
        Body: createReadStream(path, { highWaterMark: 1024 * 1024 }),
        ...(options.sha256 ? { Metadata: { sha256: options.sha256 } } : {}),
      },
      partSize,
      queueSize: UPLOAD_CONCURRENCY,
      leavePartsOnError: false, // abort the multipart upload: no orphaned parts
    })
    upload.on('httpUploadProgress', (p) => p.loaded !== undefined && options.onProgress?.(p.loaded))
    const cancel = () => void upload.abort()
    options.signal?.addEventListener('abort', cancel, { once: true })
    try {
      if (options.signal?.aborted) throw new JobError(String(options.signal.reason))
      await upload.done()
    } catch (error) {
      if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
      throw this.#explain(error, `upload of ${key}`)
    } finally {
      options.signal?.removeEventListener('abort', cancel)
    }
  }

  /**
   * Streams the object to disk. A connection that breaks mid-body is resumed with a ranged GET
   * from the bytes already written (the SDK only retries until the headers arrive).
   */
  async download(filename: string, targetPath: string, options: TransferOptions = {}): Promise<Downloaded> {
    const key = this.#key(filename)
    this.#onRequest = options.onRequest
    let written = 0
    let expected: number | undefined
    let sha256: string | undefined
    const file = await open(targetPath, 'w')
    try {
      for (let resumes = 0; ; resumes++) {
        try {
          const object = await this.#client.send(
            new GetObjectCommand({ Bucket: this.#d.bucket, Key: key, ...(written > 0 ? { Range: `bytes=${written}-` } : {}) }),
            { abortSignal: options.signal },
          )
          expected ??= object.ContentLength
          sha256 ??= object.Metadata?.sha256
          await pipeline(
            object.Body as Readable,
            new FileSink(file, written, (chunk) => {
              written += chunk.length
              options.onChunk?.(chunk)
              options.onProgress?.(written)
            }),
          )
          if (expected !== undefined && written !== expected) {
            throw new JobError(`download of ${key} was cut short: got ${written} of ${expected} bytes`)
          }
          return { size: written, sha256 }
        } catch (error) {
          if (options.signal?.aborted) throw new JobError(String(options.signal.reason), { cause: error })
          const midBody = expected !== undefined && written < expected && !(error instanceof S3ServiceException)
          if (!midBody || resumes >= this.#retries) throw this.#explain(error, `download of ${key}`)
          await backoff(resumes)
        }
      }
    } finally {
      await file.close()
    }
  }

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
    if (error instanceof S3ServiceException) {
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
    const code = (error as { code?: string }).code
    const name = (error as { name?: string }).name
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ECONNRESET') {
      return new JobError(`${what} failed: cannot reach the S3 endpoint ${d.endpointUrl} (${code})`, { cause: error })
    }
    if (name === 'TimeoutError' || code === 'ETIMEDOUT') {
      return new JobError(`${what} failed: the S3 endpoint ${d.endpointUrl} did not answer in time`, { cause: error })
    }
    const message = error instanceof Error ? error.message : String(error)
    return new JobError(`${what} failed at ${d.endpointUrl}: ${message}`, { cause: error })
  }
}

/** Exponential backoff with full jitter: up to 0.2 s, 0.4 s, 0.8 s … capped at 20 s. */
function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(20_000, 200 * 2 ** attempt)
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling))
}
