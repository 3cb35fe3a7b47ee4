// An S3 download from a custom (path-style) endpoint without the SDK: the GET is signed here
// (sigv4.ts) and read into kept buffers (kept-buffer-get.ts), as Swift downloads are. Through the
// SDK, node:http gave every socket read a fresh buffer and its parser copied the body into
// another, most of a download's CPU (docs/PERFORMANCE.md). A connection that breaks, before or
// during the body, is tried again from the bytes written, pinned to the same object (If-Match).
import type { FileHandle } from 'node:fs/promises'
import { JobError } from '../errors.ts'
import { writeBody } from './file-sink.ts'
import { keptBufferGet } from './kept-buffer-get.ts'
import { isTransientS3Error } from './s3-transient.ts'
import { signS3Request, uriEncode, type SigningCredentials } from './sigv4.ts'
import type { Downloaded, TransferOptions } from './storage.ts'
import { backoff, drain, isTransientError, readText, type HttpResponse } from './swift-http.ts'

export interface S3Object {
  /** The endpoint as configured (scheme, host, port, maybe a path). */
  endpointUrl: string
  bucket: string
  key: string
  region: string
  credentials: SigningCredentials
}

/**
 * An answer that is not a success, shaped like the SDK's errors (name = S3's error code, the
 * status in $metadata) so that the same explanations and retry rules apply.
 */
export class S3AnswerError extends Error {
  readonly $metadata: { httpStatusCode: number }
  /** Set when the body was not S3's XML (a proxy's HTML page, say): only the status says what happened. */
  readonly $response: { statusCode: number } | undefined
  readonly bucketRegion: string | undefined

  constructor(status: number, body: string, bucketRegion: string | undefined) {
    const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1]
    super(/<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? `HTTP ${status}`)
    this.name = code ?? `HTTP${status}`
    this.$metadata = { httpStatusCode: status }
    this.$response = code === undefined ? { statusCode: status } : undefined
    this.bucketRegion = bucketRegion
  }
}

/** The bucket lives in another region than `region`: the SDK, which follows it there, takes over. */
export function isWrongRegion(error: unknown, region: string): boolean {
  if (!(error instanceof S3AnswerError)) return false
  if (error.bucketRegion !== undefined && error.bucketRegion !== region) return true
  return error.name === 'PermanentRedirect' || error.name === 'AuthorizationHeaderMalformed' || error.$metadata.httpStatusCode === 301
}

/** Downloads the object into `file` (from its start); retries transient failures up to `retries` times. */
export async function downloadObject(object: S3Object, file: FileHandle, retries: number, options: TransferOptions): Promise<Downloaded> {
  const base = new URL(object.endpointUrl)
  const url = new URL(`${base.origin}${base.pathname.replace(/\/+$/, '')}/${uriEncode(object.bucket)}/${uriEncode(object.key, true)}`)
  const { signal } = options
  let written = 0
  let head: { etag: string | undefined; size: number | undefined; sha256: string | undefined } | undefined
  for (let attempt = 0; ; attempt++) {
    try {
      options.onRequest?.()
      const headers: Record<string, string> = head ? { range: `bytes=${written}-`, ...(head.etag ? { 'if-match': head.etag } : {}) } : {}
      // Host is signed, and sent by the request itself (node:http's and kept-buffer-get's alike).
      const { host: _host, ...signed } = signS3Request({ method: 'GET', url, headers }, object.credentials, object.region)
      const res = await keptBufferGet({ method: 'GET', url, headers: signed, signal })
      if (!head) {
        if (res.status !== 200) throw await answerError(res)
        const length = Number(res.headers['content-length'])
        head = { etag: header(res, 'etag'), size: Number.isFinite(length) ? length : undefined, sha256: header(res, 'x-amz-meta-sha256') }
      } else if (res.status === 412) {
        await drain(res)
        throw new JobError(`download of ${object.key} failed: the object changed while it was being downloaded; start the restore again`)
      } else if (res.status !== 206) {
        throw await answerError(res)
      }
      // Only bytes that reached the file are counted: a retry continues exactly there.
      await writeBody(res.body, file, written, (chunk) => options.onChunk?.(chunk), (total) => {
        written = total
        options.onProgress?.(total)
      })
      if (head.size !== undefined && written !== head.size) throw new JobError(`download of ${object.key} was cut short: got ${written} of ${head.size} bytes`)
      return { size: written, sha256: head.sha256 }
    } catch (error) {
      const transient = isTransientError(error) || (error instanceof S3AnswerError && isTransientS3Error(error))
      if (signal?.aborted || error instanceof JobError || !transient || attempt >= retries) throw error
      await backoff(attempt, signal)
    }
  }
}

async function answerError(res: HttpResponse): Promise<S3AnswerError> {
  return new S3AnswerError(res.status, await readText(res), header(res, 'x-amz-bucket-region'))
}

function header(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name]
  return Array.isArray(value) ? value[0] : value
}
