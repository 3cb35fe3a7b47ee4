// A GET whose response body goes from the socket straight into a few buffers kept for it: the
// data GET of a Swift download. node:http gives every socket read a fresh 64 KiB buffer and its
// parser copies the body into a second one: 2 GiB of short-lived external memory per GiB
// downloaded, which V8 answers with full garbage collections, and 16k read calls of 64 KiB
// (docs/PERFORMANCE.md, "Swift transfers"). Here a plain TCP socket reads (`onread`) into the
// free end of a 1 MiB batch; a full batch goes to the consumer (a file write) and the next read
// lands in another batch. While every batch is with the consumer the socket pauses (the server
// waits, as it would for a slow disk). TLS sockets cannot read into a given buffer: their
// decrypted chunks are copied into the batches, which still saves the parser's copy.
//
// Only what a download needs: GET, one connection per request (no reuse), bodies framed by
// Content-Length or by the end of the connection. When a proxy variable is set for the URL's
// scheme, or an answer is framed otherwise (chunked), the request goes through node:http
// (`send` of client.ts) instead: proxies and framing stay node:http's job.
import type { IncomingHttpHeaders } from 'node:http'
import net from 'node:net'
import { applyTrust } from '../../tls.ts'
import { http, tls } from '../../util/builtins.ts'
import { CONNECT_TIMEOUT_MS, IDLE_TIMEOUT_MS } from './agents.ts'
import { send, TransportError, type BorrowedBody, type HttpRequest, type HttpResponse } from './client.ts'

/** Batch size: a file write per MiB, and reads of up to the free end of a batch. */
const BATCH_BYTES = 1024 * 1024
/** Batches per request: the socket reads ahead this far (less one) while a batch is written. */
const BATCHES = 4
/** A batch with less room than this left goes to the consumer (a read gets at least this much room). */
const MIN_READ_BYTES = 64 * 1024
/** The status line and headers must fit in this (Node's own limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024

/**
 * Sends a GET (`request.body` must be empty) and resolves with the answer's head. The body is a
 * KeptBufferBody, or node:http's IncomingMessage when the request took that way (see above).
 */
export async function keptBufferGet(request: HttpRequest): Promise<HttpResponse> {
  if (request.method !== 'GET' || request.body !== undefined) throw new Error('keptBufferGet sends only GETs without a body')
  if (proxyConfigured(request.url)) return send(request)
  if (request.signal?.aborted) throw new TransportError('ABORTED', `${request.url.origin}: aborted`)
  const answer = await new KeptBufferGet(request).response
  // Framed otherwise (chunked): node:http reads it, also on a connection of its own. (From the
  // shared pool, the GET of a missing S3 object once waited forever on a connection that a
  // refused upload had left out of step with the server; client.ts no longer returns such
  // connections to the pool.)
  if (answer === 'unsupported') return send({ ...request, ownConnection: true })
  return answer
}

/** Whether a proxy variable applies to the scheme (node:http decides about NO_PROXY). */
function proxyConfigured(url: URL): boolean {
  const names = url.protocol === 'https:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY']
  return names.some((name) => (process.env[name] ?? '') !== '')
}

interface Framing {
  /** Content-Length; undefined: the body ends with the connection. */
  length: number | undefined
}

interface Queued {
  batch: number
  view: Buffer
}

/** One GET on its own connection: the head is parsed from the first batch, the body is batched. */
class KeptBufferGet {
  readonly response: Promise<HttpResponse | 'unsupported'>
  readonly #url: URL
  readonly #socket: net.Socket
  // Per request, not pooled: four allocations per download are nothing to the GC, and an idle
  // agent keeps no download buffers.
  readonly #batches: Buffer[] = Array.from({ length: BATCHES }, () => Buffer.allocUnsafeSlow(BATCH_BYTES))
  /** Per batch: free, being filled (the current one), or with the consumer (queued or in use). */
  readonly #state: ('free' | 'filling' | 'queued')[] = this.#batches.map((): 'free' => 'free')
  readonly #queue: Queued[] = []
  #current = 0
  #filled = 0
  /** Where the body starts in the current batch (after the head in the first one). */
  #bodyStart = 0
  /** The current batch is still with the consumer and the socket is paused until it comes back. */
  #stalled = false
  /** TLS: the part of a decrypted chunk that did not fit while stalled. */
  #pending: Buffer | undefined
  #head: { status: number; headers: IncomingHttpHeaders; framing: Framing } | undefined
  /** Body bytes handed to the consumer's queue so far. */
  #handedOver = 0
  #complete = false
  #failure: Error | undefined
  #resolveHead!: (response: HttpResponse | 'unsupported') => void
  #rejectHead!: (error: Error) => void
  #wake: (() => void) | undefined
  #piping = false
  #finished = false
  readonly #cleanups: (() => void)[] = []

  constructor(request: HttpRequest) {
    this.#url = request.url
    this.response = new Promise((resolve, reject) => {
      this.#resolveHead = resolve
      this.#rejectHead = reject
    })
    this.#state[0] = 'filling'
    const url = request.url
    const secure = url.protocol === 'https:'
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    const port = Number(url.port || (secure ? 443 : 80))
    if (secure) applyTrust()
    this.#socket = secure
      ? tls().connect({ host, port, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port, onread: { buffer: () => this.#region(), callback: (n: number) => this.#landed(n) } })
    const socket = this.#socket
    if (secure) socket.on('data', (chunk: Buffer) => this.#copyIn(chunk))
    socket.on('error', (error) => this.#fail(asTransportError(error, url)))
    socket.on('end', () => this.#ended())
    socket.on('close', () => this.#ended())

    const connectTimeoutMs = request.connectTimeoutMs ?? CONNECT_TIMEOUT_MS
    const idleTimeoutMs = request.idleTimeoutMs ?? IDLE_TIMEOUT_MS
    const connectTimer = setTimeout(
      () => this.#fail(new TransportError('CONNECT_TIMEOUT', `${url.origin}: no connection within ${connectTimeoutMs / 1000} s`)),
      connectTimeoutMs,
    )
    this.#cleanups.push(() => clearTimeout(connectTimer))
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer)
      socket.setTimeout(idleTimeoutMs, () =>
        this.#fail(new TransportError('IDLE_TIMEOUT', `${url.origin}: no data for ${idleTimeoutMs / 1000} s`)),
      )
    })
    const { signal } = request
    if (signal) {
      const onAbort = () => this.#fail(new TransportError('ABORTED', `${url.origin}: aborted`))
      if (signal.aborted) onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      this.#cleanups.push(() => signal.removeEventListener('abort', onAbort))
    }
    socket.write(requestHead(url, request.headers ?? {}))
  }

  /** Where the next read lands: the free end of the current batch. */
  #region(): Buffer {
    return (this.#batches[this.#current] as Buffer).subarray(this.#filled)
  }

  /** `n` bytes landed at the free end of the current batch. False: stop reading for now. */
  #landed(n: number): boolean {
    if (this.#finished || this.#complete || this.#failure !== undefined) return false
    this.#filled += n
    if (this.#head === undefined && !this.#parseHead()) return !this.#finished
    const { length } = (this.#head as { framing: Framing }).framing
    const received = this.#received()
    if (length !== undefined && received >= length) {
      // Bytes past Content-Length would be a second answer; we asked for one.
      this.#filled -= received - length
      this.#complete = true
      this.#deliver()
      this.#socket.destroy()
      return false
    }
    if (BATCH_BYTES - this.#filled < MIN_READ_BYTES) return this.#deliverAndMoveOn()
    return true
  }

  /** Body bytes so far: those handed over and those in the current batch. */
  #received(): number {
    return this.#handedOver + this.#filled - this.#bodyStart
  }

  /** The current batch's body bytes go to the consumer. */
  #deliver(): void {
    const view = (this.#batches[this.#current] as Buffer).subarray(this.#bodyStart, this.#filled)
    this.#handedOver += view.length
    this.#state[this.#current] = 'queued'
    if (view.length > 0) this.#queue.push({ batch: this.#current, view })
    else this.#release(this.#current)
    this.#wake?.()
  }

  /** Hands the full batch over and takes a free one; with none free, waits for the oldest. */
  #deliverAndMoveOn(): boolean {
    this.#deliver()
    this.#filled = 0
    this.#bodyStart = 0
    const free = this.#state.indexOf('free')
    if (free >= 0) {
      this.#current = free
      this.#state[free] = 'filling'
      return true
    }
    // Batches come back in the order they were handed over: the one the consumer holds, else the
    // first in the queue, is next. Reading resumes into it once it is back.
    this.#current = this.#consuming ?? (this.#queue[0] as Queued).batch
    this.#stalled = true
    return false
  }

  #consuming: number | undefined

  #release(batch: number): void {
    if (this.#stalled && batch === this.#current) {
      this.#state[batch] = 'filling'
      this.#unstall()
    } else {
      this.#state[batch] = 'free'
    }
  }

  #unstall(): void {
    this.#state[this.#current] = 'filling'
    this.#stalled = false
    const pending = this.#pending
    this.#pending = undefined
    if (pending) this.#copyIn(pending)
    if (!this.#stalled && !this.#finished && !this.#complete && this.#failure === undefined) this.#socket.resume()
  }

  /** TLS: a decrypted chunk, copied into the batches. */
  #copyIn(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length && !this.#finished && !this.#complete) {
      if (this.#stalled) {
        this.#pending = chunk.subarray(offset)
        this.#socket.pause()
        return
      }
      const n = chunk.copy(this.#region(), 0, offset)
      offset += n
      if (!this.#landed(n) && !this.#stalled) return
    }
  }

  /** Parses the head once it is all in the first batch. False: not yet (or failed). */
  #parseHead(): boolean {
    const batch = this.#batches[this.#current] as Buffer
    const end = batch.subarray(0, this.#filled).indexOf('\r\n\r\n')
    if (end < 0) {
      if (this.#filled > MAX_HEAD_BYTES)
        this.#fail(new TransportError('EPROTO', `${this.#url.origin}: the answer's head is larger than ${MAX_HEAD_BYTES} bytes`))
      return false
    }
    let head: { status: number; headers: IncomingHttpHeaders; framing: Framing | 'unsupported' }
    try {
      head = parseHead(batch.toString('latin1', 0, end))
    } catch (error) {
      this.#fail(new TransportError('EPROTO', `${this.#url.origin}: ${(error as Error).message}`))
      return false
    }
    if (head.framing === 'unsupported') {
      this.#finish()
      this.#resolveHead('unsupported')
      return false
    }
    this.#head = { status: head.status, headers: head.headers, framing: head.framing }
    this.#bodyStart = end + 4
    this.#resolveHead({ status: head.status, headers: head.headers, body: new KeptBufferBody(this, head.framing.length) })
    return true
  }

  /** The connection ended: the body is complete only if it is framed by the end, or all there. */
  #ended(): void {
    if (this.#finished || this.#complete || this.#failure !== undefined) return
    if (this.#head !== undefined && this.#head.framing.length === undefined) {
      this.#complete = true
      this.#deliver()
      return
    }
    const length = this.#head?.framing.length
    const what =
      this.#head === undefined
        ? 'the connection closed before an answer'
        : `the connection closed after ${this.#received()} of ${length} body bytes`
    this.#fail(new TransportError('ECONNRESET', `${this.#url.origin}: ${what}`))
  }

  #fail(error: Error): void {
    if (this.#finished || this.#complete || this.#failure !== undefined) return
    this.#failure = error
    if (this.#head === undefined) {
      this.#finish()
      this.#rejectHead(error)
    } else if (!this.#piping) {
      this.#finish() // nobody reads the body (yet): a later pipeTo gets the failure
    } else {
      this.#socket.destroy()
      this.#wake?.()
    }
  }

  /** Closes the connection; what was not handed to the consumer is dropped. */
  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    this.#queue.length = 0
    this.#socket.destroy()
    for (const cleanup of this.#cleanups) cleanup()
  }

  /** KeptBufferBody.pipeTo. */
  async pipeTo(consume: (chunk: Buffer) => Promise<void>): Promise<void> {
    if (this.#piping) throw new Error('the body is already being read')
    this.#piping = true
    try {
      for (;;) {
        const next = this.#queue.shift()
        if (next !== undefined) {
          this.#consuming = next.batch
          try {
            await consume(next.view)
          } finally {
            this.#consuming = undefined
          }
          this.#release(next.batch)
          continue
        }
        if (this.#complete) return
        if (this.#failure !== undefined) throw this.#failure
        await new Promise<void>((resolve) => (this.#wake = resolve))
        this.#wake = undefined
      }
    } catch (error) {
      this.#fail(error as Error)
      throw error
    } finally {
      this.#finish()
    }
  }

  /** KeptBufferBody.destroy: the caller does not want the rest. */
  destroy(): void {
    this.#fail(new TransportError('ABORTED', `${this.#url.origin}: the body was not read`))
    if (!this.#piping) this.#finish()
  }
}

/**
 * The body of a KeptBufferGet. `pipeTo` hands over the body in order, in views of the kept
 * batches: a view is valid until the promise its consumer returned has settled (the batch is
 * read into again afterwards). Iterating gives copies, for small bodies (readText, drain).
 */
export class KeptBufferBody implements BorrowedBody {
  /** Content-Length; undefined when the body ends with the connection. */
  readonly length: number | undefined
  readonly #get: KeptBufferGet

  constructor(get: KeptBufferGet, length: number | undefined) {
    this.#get = get
    this.length = length
  }

  /** Resolves once every byte went through `consume`; rejects with a TransportError (or `consume`'s own). */
  pipeTo(consume: (chunk: Buffer) => Promise<void>): Promise<void> {
    return this.#get.pipeTo(consume)
  }

  destroy(): void {
    this.#get.destroy()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const chunks: Buffer[] = []
    let done = false
    let failure: { error: unknown } | undefined
    let wake: (() => void) | undefined
    let taken: (() => void) | undefined
    // One copied chunk at a time: the next is read once this one was taken.
    void this.pipeTo(
      (chunk) =>
        new Promise<void>((resolve) => {
          chunks.push(Buffer.from(chunk))
          taken = resolve
          wake?.()
        }),
    ).then(
      () => {
        done = true
        wake?.()
      },
      (error: unknown) => {
        failure = { error }
        wake?.()
      },
    )
    try {
      for (;;) {
        const chunk = chunks.shift()
        if (chunk !== undefined) {
          const next = taken
          taken = undefined
          next?.()
          yield chunk
          continue
        }
        if (failure) throw failure.error
        if (done) return
        await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
      }
    } finally {
      // Left early (a break): the rest of the body is not wanted.
      if (!done && !failure) {
        this.destroy()
        taken?.()
      }
    }
  }
}

function requestHead(url: URL, headers: Record<string, string | number>): string {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`]
  for (const [name, value] of Object.entries(headers)) {
    http.validateHeaderName(name)
    http.validateHeaderValue(name, String(value))
    lines.push(`${name}: ${value}`)
  }
  lines.push('connection: close', '', '')
  return lines.join('\r\n')
}

/** Headers of which a second copy with another value means the answer cannot be trusted. */
const SINGLE = new Set(['content-length', 'etag', 'content-range'])

/** Status line and headers (latin1 text without the final empty line). */
function parseHead(text: string): { status: number; headers: IncomingHttpHeaders; framing: Framing | 'unsupported' } {
  const lines = text.split('\r\n')
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
  if (!statusLine) throw new Error(`not an HTTP/1.1 answer: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`)
  const status = Number(statusLine[1])
  const headers: IncomingHttpHeaders = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new Error(`a malformed header line: ${JSON.stringify(line.slice(0, 80))}`)
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    const previous = headers[name]
    if (previous === undefined) {
      headers[name] = name === 'set-cookie' ? [value] : value
    } else if (Array.isArray(previous)) {
      previous.push(value)
    } else if (SINGLE.has(name)) {
      if (previous !== value) throw new Error(`two different ${name} headers`)
    } else {
      headers[name] = `${previous}, ${value}`
    }
  }
  if (status < 200) return { status, headers, framing: 'unsupported' } // 1xx: not asked for
  if (headers['transfer-encoding'] !== undefined) return { status, headers, framing: 'unsupported' }
  if (status === 204 || status === 304) return { status, headers, framing: { length: 0 } }
  const length = headers['content-length']
  if (length === undefined) return { status, headers, framing: { length: undefined } }
  if (!/^\d+$/.test(length)) throw new Error(`a malformed content-length: ${JSON.stringify(length)}`)
  return { status, headers, framing: { length: Number(length) } }
}

function asTransportError(error: Error, url: URL): TransportError {
  if (error instanceof TransportError) return error
  const code = (error as { code?: string }).code ?? 'EIO'
  return new TransportError(code, `${url.origin}: ${error.message}`, { cause: error })
}
