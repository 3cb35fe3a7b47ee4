// An S3 download into a file, and an object opened for reading (a streamed restore). The data GET
// of a download reads into kept buffers (kept-buffer-get.ts), as Swift downloads do: node:http
// gives every socket read a fresh buffer and its parser copies the body into another, most of a
// download's CPU (docs/PERFORMANCE.md). A connection that breaks, before or during the body, is
// tried again from the bytes already passed on, pinned to the same object (If-Match).
import type { FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { JobError } from '../../errors.ts'
import { writeBody } from '../files/sink.ts'
import type { Downloaded, ObjectReader, TransferOptions } from '../storage.ts'
import type { HttpResponse } from '../http/client.ts'
import { backoff, withRetries } from '../http/retry.ts'
import type { S3Client } from './client.ts'
import { isTransientS3Error, S3Error } from './errors.ts'

interface ObjectHead {
  etag: string | undefined
  size: number | undefined
  metadata: Record<string, string>
}

/** The GET of the object, or of its rest from `from` once `head` is known (the same object only). */
async function getObject(
  client: S3Client,
  key: string,
  head: ObjectHead | undefined,
  from: number,
  kept: boolean,
  options: TransferOptions,
): Promise<HttpResponse> {
  const headers: Record<string, string> = head ? { range: `bytes=${from}-`, ...(head.etag ? { 'if-match': head.etag } : {}) } : {}
  try {
    const res = await client.once({ method: 'GET', key, headers, kept }, options)
    if (res.status !== (head ? 206 : 200)) {
      res.body.destroy()
      // A server that ignores Range (200 to the resumed GET) cannot resume: the bytes would repeat.
      throw new JobError(
        `download of ${key} failed: the server answered HTTP ${res.status} to a${head ? ' ranged' : ''} GET, not ${head ? 206 : 200}`,
      )
    }
    return res
  } catch (error) {
    if (head && error instanceof S3Error && error.status === 412) {
      throw new JobError(`download of ${key} failed: the object changed while it was being downloaded; start the restore again`)
    }
    throw error
  }
}

/** Downloads the object into `file` (from its start); retries transient failures up to `retries` times. */
export async function downloadObject(
  client: S3Client,
  key: string,
  file: FileHandle,
  retries: number,
  options: TransferOptions,
): Promise<Downloaded> {
  const { signal } = options
  let written = 0
  let head: ObjectHead | undefined
  return withRetries({ retries, signal, transient: transientGet }, async () => {
    const res = await getObject(client, key, head, written, true, options)
    head ??= objectHead(res)
    // Only bytes that reached the file are counted: a retry continues exactly there.
    await writeBody(
      res.body,
      file,
      written,
      (chunk) => options.onChunk?.(chunk),
      (total) => {
        written = total
        options.onProgress?.(total)
      },
    )
    if (head.size !== undefined && written !== head.size)
      throw new JobError(`download of ${key} was cut short: got ${written} of ${head.size} bytes`)
    return { size: written, sha256: head.metadata.sha256 }
  })
}

/** A GET worth another try: a transient failure (errors.ts), never one of ours (JobError: the object changed, a short body). */
function transientGet(error: unknown): boolean {
  return !(error instanceof JobError) && isTransientS3Error(error)
}

/**
 * Opens the object for reading. The first GET is retried as any request is; a connection that
 * breaks mid-body is resumed from the bytes already passed on, up to `retries` times.
 */
export async function readObject(client: S3Client, key: string, retries: number, options: TransferOptions): Promise<ObjectReader> {
  const { signal } = options
  const get = (head: ObjectHead | undefined, from: number): Promise<HttpResponse> =>
    withRetries({ retries, signal, transient: transientGet }, () => getObject(client, key, head, from, false, options))
  const first = await get(undefined, 0)
  const head = objectHead(first)
  async function* chunks(): AsyncGenerator<Buffer> {
    let body = first.body as Readable
    let passed = 0
    try {
      for (let resumes = 0; ; ) {
        try {
          for await (const chunk of body) {
            passed += (chunk as Buffer).length
            yield chunk as Buffer
          }
          if (head.size !== undefined && passed !== head.size)
            throw new JobError(`download of ${key} was cut short: got ${passed} of ${head.size} bytes`)
          return
        } catch (error) {
          if (signal?.aborted || head.size === undefined || resumes >= retries || !transientGet(error)) throw error
          body.destroy()
          await backoff(resumes++, signal)
          body = (await get(head, passed)).body as Readable
        }
      }
    } finally {
      body.destroy() // left early (the reader stopped) or failed: the connection is not reused
    }
  }
  return { sha256: head.metadata.sha256, size: head.size, metadata: head.metadata, chunks: chunks() }
}

function objectHead(res: HttpResponse): ObjectHead {
  const length = Number(res.headers['content-length'])
  const metadata: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (name.startsWith('x-amz-meta-') && value !== undefined)
      metadata[name.slice('x-amz-meta-'.length)] = Array.isArray(value) ? value.join(',') : value
  }
  const etag = res.headers.etag
  return {
    etag: typeof etag === 'string' ? etag : undefined,
    size: Number.isFinite(length) && res.headers['content-length'] !== undefined ? length : undefined,
    metadata,
  }
}
