// The S3 REST calls the agent makes, on its own HTTP client (../http/client.ts, and kept-buffer-get.ts
// for a download's data GET) and its SigV4 signer (sigv4.ts). It replaced @aws-sdk/client-s3 with
// @smithy/node-http-handler: loading the SDK for a job's first S3 request added ~30 MB of RSS
// that stayed resident for the agent's life (ten thousand functions of generated serialisers,
// middleware, endpoint rules), and each of its requests left ~270 KB of garbage that lived as long
// as the request did. This client sends what the SDK sent for these calls: SigV4 headers with the
// body's SHA-256 computed beforehand, path-style URLs on custom endpoints and virtual-hosted ones
// on AWS, the same retries (errors.ts), and it follows a bucket to its region as the SDK's
// followRegionRedirects did.
import { createHash } from 'node:crypto'
import { JobError } from '../../errors.ts'
import { keptBufferGet } from '../http/kept-buffer-get.ts'
import { drain, readText, send, type HttpRequest, type HttpResponse, type StreamedBody } from '../http/client.ts'
import { withRetries } from '../http/retry.ts'
import { isTransientS3Error, S3Error } from './errors.ts'
import { EMPTY_SHA256, signS3Request, uriEncode, type SigningCredentials } from './sigv4.ts'
import {
  completeBody,
  readCompleteResult,
  readErrorDocument,
  readPartListing,
  readUploadId,
  readUploadListing,
  type PartListing,
  type UploadListing,
} from './xml.ts'

/** AWS itself (s3.amazonaws.com, s3.<region>.amazonaws.com, s3-<region>…, China's .com.cn). */
const AWS_ENDPOINT = /^(https?:\/\/)?s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?\/?$/i
/** A region name: signed into every request, and part of AWS's host names. */
const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/i
/** A bucket that can be a host name label (AWS: virtual-hosted); others are addressed by path. */
const HOST_LABEL_BUCKET = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/
/** Error codes that may mean our clock is off (the AWS SDK's list); retried once the clock is corrected. */
const CLOCK_SKEW_CODES = new Set([
  'AuthFailure',
  'InvalidSignatureException',
  'RequestExpired',
  'RequestInTheFuture',
  'RequestTimeTooSkewed',
  'SignatureDoesNotMatch',
])
/** A difference from the server's clock that signatures do not tolerate (S3 allows 15 minutes). */
const CLOCK_SKEW_MS = 5 * 60_000
/** Error documents are small; a longer body is cut (and still read to its end). */
const ERROR_BODY_LIMIT = 64 * 1024

export interface S3Target {
  /** The endpoint as configured: AWS's own endpoints are addressed virtual-hosted, by region. */
  endpoint: string
  /** The endpoint with its scheme (custom endpoints: path-style URLs under it). */
  endpointUrl: string
  bucket: string
  /** Undefined: us-east-1 first, then the region the bucket's answers name. */
  region: string | undefined
  credentials: SigningCredentials
}

export interface CallOptions {
  signal?: AbortSignal | undefined
  /** Called for every request sent, retries and redirects included. */
  onRequest?: (() => void) | undefined
}

/** A request body: in memory, or streamed (from a file) afresh for every attempt. */
export type Body = Buffer | StreamedBody

export interface Call {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  /** The object; undefined addresses the bucket. */
  key?: string
  query?: Record<string, string>
  /** Lower-case names; all are signed. */
  headers?: Record<string, string>
  body?: Body | string
  /** The body's SHA-256 (hex); computed here for a string body, required for the others. */
  sha256?: string
  /** A GET whose body goes into kept buffers (kept-buffer-get.ts): a download's data. */
  kept?: boolean
}

export class S3Client {
  readonly #target: S3Target
  readonly #aws: boolean
  readonly #retries: number
  #region: string
  /** The server's clock minus ours, once an answer said ours is off. */
  #clockOffsetMs = 0

  constructor(target: S3Target, retries: number) {
    this.#target = target
    this.#aws = isAwsEndpoint(target.endpoint)
    this.#retries = retries
    // No region given: us-east-1, what servers that do not say expect; AWS names the bucket's own.
    this.#region = target.region ?? 'us-east-1'
  }

  get region(): string {
    return this.#region
  }

  /**
   * Sends the request; a success (status below 300) resolves with its body unread. An answer that
   * names the bucket's region is followed there once, and one that says our clock is off is sent
   * again with the server's time. Rejects with S3Error for another answer, TransportError when
   * there was none.
   */
  async once(call: Call, options: CallOptions): Promise<HttpResponse> {
    let redirected = false
    let clockCorrected = false
    for (;;) {
      options.onRequest?.()
      const res = await this.#send(call, options.signal)
      if (res.status < 300) return res
      const error = await answerError(res)
      if (!redirected && this.#followRegion(error)) {
        redirected = true
        continue
      }
      if (!clockCorrected && this.#correctClock(error, res.headers.date)) {
        clockCorrected = true
        continue
      }
      throw error
    }
  }

  /**
   * once() with transient failures retried (errors.ts), up to `retries` times, with backoff.
   * `accept` reads a successful answer; what it throws is retried the same way (an error document
   * under a 200).
   */
  async call<T>(call: Call, options: CallOptions, accept: (res: HttpResponse) => Promise<T>): Promise<T> {
    return withRetries({ retries: this.#retries, signal: options.signal, transient: isTransientS3Error }, async () =>
      accept(await this.once(call, options)),
    )
  }

  /** PutObject: the whole object in one request. */
  async putObject(
    key: string,
    body: Body,
    sha256: string,
    metadata: Record<string, string> | undefined,
    options: CallOptions,
  ): Promise<void> {
    await this.call({ method: 'PUT', key, body: continued(body), sha256, headers: metaHeaders(metadata) }, options, drain)
  }

  /** CreateMultipartUpload: the upload's id. S3 takes an object's metadata here, before its data. */
  async createMultipartUpload(key: string, metadata: Record<string, string> | undefined, options: CallOptions): Promise<string> {
    return this.call({ method: 'POST', key, query: { uploads: '' }, headers: metaHeaders(metadata) }, options, async (res) =>
      readUploadId(await readText(res)),
    )
  }

  /** UploadPart: the part's ETag, for the completion. */
  async uploadPart(key: string, uploadId: string, number: number, body: Body, sha256: string, options: CallOptions): Promise<string> {
    const call: Call = { method: 'PUT', key, query: { partNumber: String(number), uploadId }, body: continued(body), sha256 }
    return this.call(call, options, async (res) => {
      await drain(res)
      const etag = res.headers.etag
      if (typeof etag !== 'string' || etag === '') throw new Error(`S3 answered part ${number} without an ETag`)
      return etag
    })
  }

  /** CompleteMultipartUpload: the parts in order. An error document under its 200 is an error (retried: S3 says to). */
  async completeMultipartUpload(
    key: string,
    uploadId: string,
    parts: readonly { number: number; etag: string }[],
    options: CallOptions,
  ): Promise<void> {
    const call: Call = {
      method: 'POST',
      key,
      query: { uploadId },
      body: completeBody(parts),
      headers: { 'content-type': 'application/xml' },
    }
    await this.call(call, options, async (res) => {
      const text = await readText(res)
      // An empty answer: S3 dropped the request while it assembled the object (the AWS SDK's rule).
      if (text.trim() === '') throw new S3Error(200, 'InternalError', 'S3 aborted the request', undefined)
      const error = readCompleteResult(text)
      if (error) throw new S3Error(200, error.code, error.message, error.region)
    })
  }

  /** AbortMultipartUpload: the parts stored so far are removed. */
  async abortMultipartUpload(key: string, uploadId: string, options: CallOptions): Promise<void> {
    await this.call({ method: 'DELETE', key, query: { uploadId } }, options, drain)
  }

  /** ListMultipartUploads of keys starting with `prefix`, every page. */
  async listMultipartUploads(prefix: string, options: CallOptions): Promise<{ key: string; uploadId: string }[]> {
    const uploads: { key: string; uploadId: string }[] = []
    let marker: UploadListing['next']
    // Bounded: a server that always says "truncated" must not keep a job here.
    for (let page = 0; page < 1000; page++) {
      const listing = await this.listMultipartUploadsPage(prefix, marker, options)
      uploads.push(...listing.uploads.map(({ key, uploadId }) => ({ key, uploadId })))
      if (listing.next === undefined) return uploads
      marker = listing.next
    }
    return uploads
  }

  /** One page of ListMultipartUploads of keys starting with `prefix`, from `marker` (the previous page's `next`). */
  async listMultipartUploadsPage(prefix: string, marker: UploadListing['next'], options: CallOptions): Promise<UploadListing> {
    const query: Record<string, string> = {
      uploads: '',
      prefix,
      ...(marker ? { 'key-marker': marker.keyMarker, 'upload-id-marker': marker.uploadIdMarker } : {}),
    }
    return this.call({ method: 'GET', query }, options, async (res) => readUploadListing(await readText(res)))
  }

  /** One page of ListParts of an upload, from `marker` (the previous page's `next`): the bytes its parts hold. */
  async listPartsPage(key: string, uploadId: string, marker: string | undefined, options: CallOptions): Promise<PartListing> {
    const query: Record<string, string> = { uploadId, ...(marker ? { 'part-number-marker': marker } : {}) }
    return this.call({ method: 'GET', key, query }, options, async (res) => readPartListing(await readText(res)))
  }

  async #send(call: Call, signal: AbortSignal | undefined): Promise<HttpResponse> {
    const url = requestUrl(this.#target, this.#aws, this.#region, call.key, call.query)
    const body = call.body
    const sha256 = typeof body === 'string' ? createHash('sha256').update(body).digest('hex') : (call.sha256 ?? EMPTY_SHA256)
    if (body !== undefined && typeof body !== 'string' && call.sha256 === undefined) throw new Error('an S3 request body needs its SHA-256')
    const now = new Date(Date.now() + this.#clockOffsetMs)
    // Host is signed, and sent by the request itself (node:http's and kept-buffer-get's alike).
    const { host: _host, ...headers } = signS3Request(
      { method: call.method, url, headers: call.headers ?? {} },
      this.#target.credentials,
      this.#region,
      sha256,
      now,
    )
    const request: HttpRequest = { method: call.method, url, headers, body, signal }
    return call.kept ? keptBufferGet(request) : send(request)
  }

  /** The bucket is in another region: its answers say which (the AWS SDK's followRegionRedirects). */
  #followRegion(error: S3Error): boolean {
    const { region, status, code } = error
    if (region === undefined || region === this.#region || !REGION.test(region)) return false
    const redirect =
      status === 301 ||
      status === 307 ||
      (status === 400 && (code === 'AuthorizationHeaderMalformed' || code === 'IllegalLocationConstraintException'))
    if (redirect) this.#region = region
    return redirect
  }

  /** Signatures carry the time: a refusal with the server's clock far from ours is answered with its time. */
  #correctClock(error: S3Error, date: string | undefined): boolean {
    if (error.code === undefined || !CLOCK_SKEW_CODES.has(error.code) || date === undefined) return false
    const offset = Date.parse(date) - Date.now()
    if (!Number.isFinite(offset) || Math.abs(offset - this.#clockOffsetMs) < CLOCK_SKEW_MS) return false
    this.#clockOffsetMs = offset
    return true
  }
}

/**
 * The request URL: path-style under a custom endpoint, virtual-hosted on AWS where the bucket
 * name can be a host name label (the AWS SDK's rule), path-style on AWS otherwise.
 */
export function requestUrl(
  target: Pick<S3Target, 'endpointUrl' | 'bucket'>,
  aws: boolean,
  region: string,
  key: string | undefined,
  query: Record<string, string> | undefined,
): URL {
  const { bucket } = target
  const objectPath = key === undefined ? '' : `/${uriEncode(key, true)}`
  let origin: string
  let path: string
  if (aws) {
    if (!REGION.test(region)) throw new JobError(`the S3 region ${JSON.stringify(region.slice(0, 64))} is not a region name`)
    const host = `s3.${region}.${region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com'}`
    const virtual = HOST_LABEL_BUCKET.test(bucket)
    origin = virtual ? `https://${bucket}.${host}` : `https://${host}`
    path = virtual ? objectPath || '/' : `/${uriEncode(bucket)}${objectPath}`
  } else {
    const endpoint = new URL(target.endpointUrl)
    origin = endpoint.origin
    path = `${endpoint.pathname.replace(/\/+$/, '')}/${uriEncode(bucket)}${objectPath}`
  }
  const search = Object.entries(query ?? {})
    .map(([name, value]) => (value === '' ? uriEncode(name) : `${uriEncode(name)}=${uriEncode(value)}`))
    .join('&')
  const url = new URL(`${origin}${path}${search === '' ? '' : `?${search}`}`)
  // URL parsing resolves `.` and `..` segments: such a key would address another object. The
  // trigger refuses those names; this keeps any that got through from reaching the server.
  if (url.pathname !== path || url.origin !== origin)
    throw new JobError(`the S3 key ${JSON.stringify(key)} cannot be addressed in a URL (a . or .. path segment?)`)
  return url
}

/** AWS's own endpoints (virtual-hosted, by region) rather than a custom server's. */
export function isAwsEndpoint(endpoint: string): boolean {
  return AWS_ENDPOINT.test(endpoint)
}

/** The failure an answer with status 300 or more describes (its body read, and its connection not reused: ../http/client.ts). */
async function answerError(res: HttpResponse): Promise<S3Error> {
  const document = readErrorDocument(await readText(res, ERROR_BODY_LIMIT))
  const header = res.headers['x-amz-bucket-region']
  const region = (Array.isArray(header) ? header[0] : header) ?? document?.region
  return new S3Error(res.status, document?.code, document?.message, region)
}

/**
 * A buffer as a streamed body: sent once the server said `100 Continue` (../http/client.ts), so a
 * request refused at once (credentials, a missing bucket) does not send a 12 MiB part first.
 */
function continued(body: Body): StreamedBody {
  if (!Buffer.isBuffer(body)) return body
  return { length: body.length, send: async (write) => (body.length > 0 ? write(body) : undefined) }
}

function metaHeaders(metadata: Record<string, string> | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(metadata ?? {})) headers[`x-amz-meta-${name.toLowerCase()}`] = value
  return headers
}
