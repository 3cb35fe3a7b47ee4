// The one HTTP client of the storage backends (Swift, its Keystone login, S3), on node:http with
// the shared connection pools of agents.ts. Why not the global fetch: those pools honour HTTPS_PROXY /
// HTTP_PROXY / NO_PROXY (fetch only does with NODE_USE_ENV_PROXY set), node:http lets us set a
// connect timeout and an idle timeout per request without undici as a dependency, and it speaks
// `Expect: 100-continue`, so a PUT whose token has expired is answered 401 before a single byte
// of a 1 GiB segment is sent (and can be sent again after a new login).
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { applyTrust } from '../../tls.ts'
import { http, https } from '../../util/builtins.ts'
import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS, httpAgent, httpsAgent } from './agents.ts'

/** How long to wait for `100 Continue` before sending the body anyway (servers that ignore Expect). */
const CONTINUE_WAIT_MS = 1_000
/** Error and JSON bodies we read into memory are small; anything beyond this is cut. */
const TEXT_LIMIT_BYTES = 4 * 1024 * 1024

/**
 * A request body read from disk: produced only once the server is ready for it, again on a retry.
 * `send` passes the bytes in order to `write`, which resolves once the socket has taken the chunk
 * (its buffer may be reused then: a file read into a few buffers it keeps costs no page faults,
 * fresh buffers per read did, src/storage/files/backup-file.ts) and rejects when the request failed.
 * Any other rejection of `send` is the source's own failure (the file) and is passed on as it is.
 */
export interface StreamedBody {
  length: number
  send: (write: (chunk: Buffer) => Promise<void>) => Promise<void>
}

export interface HttpRequest {
  method: string
  url: URL
  headers?: Record<string, string | number>
  body?: string | Buffer | StreamedBody
  signal?: AbortSignal | undefined
  /** Defaults: CONNECT_TIMEOUT_MS and IDLE_TIMEOUT_MS of agents.ts. */
  connectTimeoutMs?: number
  idleTimeoutMs?: number
  /** A connection of its own, closed after the answer, instead of one from the shared pools. */
  ownConnection?: boolean
}

/**
 * A response body read into buffers kept for it (KeptBufferBody of kept-buffer-get.ts, which
 * implements this: declared here so that the client does not import the kept-buffer GET, which
 * imports the client). `pipeTo` hands the body over in views that are valid until the promise
 * `consume` returned has settled; iterating gives copies.
 */
export interface BorrowedBody extends AsyncIterable<Buffer> {
  /** Content-Length; undefined when the body ends with the connection. */
  readonly length: number | undefined
  pipeTo(consume: (chunk: Buffer) => Promise<void>): Promise<void>
  destroy(): void
}

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  /**
   * Must be consumed (readText, drain or piped) so the connection can be reused (or closed).
   * A BorrowedBody when the request went through keptBufferGet (kept-buffer-get.ts).
   */
  body: IncomingMessage | BorrowedBody
}

/** The request never got an HTTP answer: refused, reset, timed out, aborted. */
export class TransportError extends Error {
  override name = 'TransportError'
  /** ECONNREFUSED, ECONNRESET, ENOTFOUND, CONNECT_TIMEOUT, IDLE_TIMEOUT, ABORTED, … */
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

function transportError(error: unknown, url: URL): TransportError {
  if (error instanceof TransportError) return error
  const code = (error as { code?: string }).code ?? 'EIO'
  return new TransportError(code, `${url.origin}: ${(error as Error).message ?? String(error)}`, { cause: error })
}

/** Sends one request and resolves with the response head; the body is left to the caller. */
export function send(request: HttpRequest): Promise<HttpResponse> {
  const { url, body, signal } = request
  const connectTimeoutMs = request.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
  const idleTimeoutMs = request.idleTimeoutMs ?? IDLE_TIMEOUT_MS
  const secure = url.protocol === 'https:'
  if (secure) applyTrust()
  const headers: Record<string, string | number> = { ...request.headers }
  const streamed = typeof body === 'object' && !Buffer.isBuffer(body)
  if (streamed) {
    headers['content-length'] = body.length
    if (body.length > 0) headers.expect = '100-continue'
  } else if (body !== undefined) {
    headers['content-length'] = Buffer.byteLength(body)
  }

  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TransportError('ABORTED', `${url.origin}: aborted`))
    const agent = request.ownConnection ? false : secure ? httpsAgent() : httpAgent
    const req = (secure ? https() : http).request(url, { method: request.method, headers, agent })
    const pending: PendingRequest = { response: undefined, settled: false, bodyStarted: false, continueTimer: undefined }

    // Before the answer a failure rejects; after it, it ends the response stream the caller reads.
    const fail = (error: Error) => {
      clearTimeout(pending.continueTimer)
      if (!pending.settled) {
        pending.settled = true
        reject(error)
      } else {
        pending.response?.destroy(error)
      }
      req.destroy()
    }
    const onAbort = () => fail(new TransportError('ABORTED', `${url.origin}: aborted`))
    signal?.addEventListener('abort', onAbort, { once: true })
    req.once('close', () => signal?.removeEventListener('abort', onAbort))

    failSlowConnect(req, connectTimeoutMs, url, fail)
    req.setTimeout(idleTimeoutMs, () => fail(new TransportError('IDLE_TIMEOUT', `${url.origin}: no data for ${idleTimeoutMs / 1000} s`)))
    req.on('error', (error) => fail(transportError(error, url)))
    req.on('response', (res) => {
      pending.response = res
      pending.settled = true
      clearTimeout(pending.continueTimer)
      // A refused request with a body: the server may not have read all of it (Swift's s3api,
      // eventlet, answers first and then takes the rest of the body for the next request on the
      // connection, which got a 400 that was not S3's XML). The connection closes once read.
      if (body !== undefined && (res.statusCode ?? 0) >= 300) req.shouldKeepAlive = false
      if (streamed && !pending.bodyStarted) {
        // Answered before the body was sent (401, 404, 413 …): this connection carries an
        // unfinished request and cannot be reused once the answer is read.
        pending.bodyStarted = true
        res.once('end', () => req.destroy())
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res })
    })

    if (!streamed) {
      req.end(body)
      return
    }
    sendStreamedBody(req, body, url, pending, fail)
  })
}

/** What the steps of one request share while it is under way. */
interface PendingRequest {
  response: IncomingMessage | undefined
  /** The promise has resolved (an answer) or rejected (a failure before one). */
  settled: boolean
  bodyStarted: boolean
  continueTimer: NodeJS.Timeout | undefined
}

function failSlowConnect(req: ClientRequest, connectTimeoutMs: number, url: URL, fail: (error: Error) => void): void {
  req.on('socket', (socket) => {
    if (!socket.connecting) return
    const timer = setTimeout(
      () => fail(new TransportError('CONNECT_TIMEOUT', `${url.origin}: no connection within ${connectTimeoutMs / 1000} s`)),
      connectTimeoutMs,
    )
    socket.once('connect', () => clearTimeout(timer))
    socket.once('close', () => clearTimeout(timer))
  })
}

/** Sends the body once the server says `100 Continue` (or after CONTINUE_WAIT_MS, or at once when empty). */
function sendStreamedBody(req: ClientRequest, body: StreamedBody, url: URL, pending: PendingRequest, fail: (error: Error) => void): void {
  const startBody = () => {
    clearTimeout(pending.continueTimer)
    if (pending.bodyStarted || req.destroyed) return
    pending.bodyStarted = true
    const { write, requestFailure } = bodyWriter(req, url)
    body.send(write).then(
      () => req.end(),
      // A failure of the source (the file) is ours, not the network's: passed on as it is.
      (error: Error) => fail(requestFailure.has(error) ? transportError(error, url) : error),
    )
  }
  if (body.length === 0) return startBody()
  req.on('continue', startBody)
  pending.continueTimer = setTimeout(startBody, CONTINUE_WAIT_MS)
  req.flushHeaders()
}

/** Writes of the body's chunks, each resolved when the socket took it; the errors they failed with. */
function bodyWriter(req: ClientRequest, url: URL): { write: (chunk: Buffer) => Promise<void>; requestFailure: Set<unknown> } {
  const requestFailure = new Set<unknown>()
  // Writes still waiting when the request closes fail (a callback never comes for one that
  // was queued before the socket was there).
  const waiting = new Set<(error: Error) => void>()
  req.once('close', () => {
    waiting.forEach((reject) => {
      reject(new TransportError('ABORTED', `${url.origin}: the request closed`))
    })
  })
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => {
        waiting.delete(failed)
        requestFailure.add(error)
        reject(error)
      }
      if (req.destroyed) return failed(new TransportError('ABORTED', `${url.origin}: the request closed`))
      waiting.add(failed)
      req.write(chunk, (error) => {
        if (error) return failed(error)
        waiting.delete(failed)
        resolve()
      })
    })
  return { write, requestFailure }
}

/** Reads a (small) response body as text, cut at a limit; never throws for a broken stream. */
export async function readText(response: HttpResponse, limit = TEXT_LIMIT_BYTES): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      if (size < limit) chunks.push(chunk)
      size += chunk.length
    }
  } catch {
    // An error body that breaks off is still worth showing as far as it came.
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8')
}

/** Reads and discards a response body, so its connection goes back to the pool. */
export async function drain(response: HttpResponse): Promise<void> {
  await readText(response, 0)
}
