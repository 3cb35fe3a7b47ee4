// Authenticated requests to one Swift account. The token comes from the shared cache; a 401
// (token expired or revoked before its time) gets one new login and one more try; transient
// failures (network, 5xx, throttling) are tried again with backoff, up to `retries` times.
import { tokenCache, type LoginOptions, type SwiftCredentials, type SwiftSession, type TokenCache } from './keystone.ts'
import { keptBufferGet } from '../http/kept-buffer-get.ts'
import { drain, send as sendRequest, type HttpRequest, type HttpResponse } from '../http/client.ts'
import { backoff, isTransientError, isTransientStatus } from '../http/retry.ts'

export interface SwiftCall {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE'
  container: string
  object?: string
  /** Already encoded, without `?`. */
  query?: string
  headers?: Record<string, string | number>
  /** A streamed body is reopened for every try. */
  body?: HttpRequest['body']
  signal?: AbortSignal | undefined
  /**
   * A GET whose body is large and read once, in order (a download's data): its body is read
   * from the socket into kept buffers (kept-buffer-get.ts) instead of through node:http.
   */
  keptBuffers?: boolean
}

export interface SwiftClientOptions {
  region: string | undefined
  /** Further tries after a transient failure (storage_retries). */
  retries: number
  tokens?: TokenCache
  /** Called for every request sent to Swift, tries included. */
  onRequest?: (() => void) | undefined
}

export class SwiftClient {
  readonly credentials: SwiftCredentials
  readonly #login: LoginOptions
  readonly #tokens: TokenCache
  #onRequest: (() => void) | undefined
  #storageUrl = ''
  /** Every token this client sent: a server's error answer may echo one (see errors.ts). */
  readonly #sentTokens = new Set<string>()

  constructor(credentials: SwiftCredentials, options: SwiftClientOptions) {
    this.credentials = credentials
    this.#login = { region: options.region, retries: options.retries }
    this.#tokens = options.tokens ?? tokenCache
    this.#onRequest = options.onRequest
  }

  /** The account URL of the last login, for messages ('' before the first request). */
  get storageUrl(): string {
    return this.#storageUrl
  }

  /** The tokens this client has sent, for masking them in messages. */
  get sentTokens(): ReadonlySet<string> {
    return this.#sentTokens
  }

  /** Who counts the requests of the current transfer. */
  set onRequest(callback: (() => void) | undefined) {
    this.#onRequest = callback
  }

  /** Logs in (or takes the cached token) without sending anything to Swift. */
  async session(): Promise<SwiftSession> {
    const session = await this.#tokens.session(this.credentials, this.#login)
    this.#storageUrl = session.storageUrl
    return session
  }

  /**
   * Sends a request and returns Swift's answer, whatever its status, after the retries: a
   * transient answer that persists is returned too, for the caller to explain. Throws only for
   * a login that failed and for a network failure that persisted.
   */
  async request(call: SwiftCall): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.#authorized(call)
        if (!isTransientStatus(res.status) || attempt >= this.#login.retries) return res
        await drain(res)
      } catch (error) {
        if (!isTransientError(error) || attempt >= this.#login.retries) throw error
      }
      await backoff(attempt, call.signal)
    }
  }

  async #authorized(call: SwiftCall): Promise<HttpResponse> {
    const session = await this.session()
    const send = call.keptBuffers ? keptBufferGet : sendRequest
    this.#onRequest?.()
    const first = await send(this.#build(session, call))
    if (first.status !== 401) return first
    await drain(first)
    const renewed = await this.#tokens.renew(this.credentials, this.#login, session)
    this.#storageUrl = renewed.storageUrl
    this.#onRequest?.()
    return send(this.#build(renewed, call))
  }

  #build(session: SwiftSession, call: SwiftCall): HttpRequest {
    let path = `${session.storageUrl}/${encodeName(call.container)}`
    if (call.object !== undefined) path += `/${encodeName(call.object)}`
    if (call.query) path += `?${call.query}`
    this.#sentTokens.add(session.token)
    return {
      method: call.method,
      url: new URL(path),
      headers: { ...call.headers, 'x-auth-token': session.token },
      body: call.body,
      signal: call.signal,
    }
  }
}

/** Object names keep their `/` (segment names use them); everything else is percent-encoded. */
function encodeName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/')
}
