// Logging in to Swift: Keystone v3, Keystone v2.0 or v1 tempauth, chosen by the auth URL, and a
// token cache shared by all jobs of the agent. A login gives a token and the storage URL (from
// the catalog for Keystone, from X-Storage-Url for v1).
import { createHash } from 'node:crypto'
import { JobError } from '../../errors.ts'
import { maskSecrets } from '../../scripts/capture.ts'
import { readText, send, TransportError, type HttpResponse } from '../http/client.ts'
import { isTransientError, isTransientStatus, withRetries } from '../http/retry.ts'

export type AuthVersion = 'v3' | 'v2.0' | 'v1'

/** The login fields of a Swift destination (SPEC §3). */
export interface SwiftCredentials {
  authUrl: string
  /** v3 only: the domain of both the user and the project ('' means Keystone's default domain). */
  domain: string
  /** v3: the project; v2.0: the tenant; v1: unused. */
  projectName: string
  username: string
  password: string
}

export interface SwiftSession {
  token: string
  /** The account URL, e.g. https://swift.example/v1/AUTH_<project id>. */
  storageUrl: string
  /** Epoch ms, when the server said; undefined when it did not. */
  expiresAt: number | undefined
}

/** A login that failed; the message names user, auth URL and the server's answer, never the password. */
export class SwiftAuthError extends JobError {
  override name = 'SwiftAuthError'
}

/** The auth version follows the URL's last path segment: /v3, /v2.0, else v1 (/auth/v1.0). */
export function authVersion(authUrl: string): AuthVersion {
  const path = URL.parse(authUrl)?.pathname.replace(/\/+$/, '') ?? ''
  if (/\/v3$/.test(path)) return 'v3'
  if (/\/v2(\.0)?$/.test(path)) return 'v2.0'
  return 'v1'
}

export interface LoginOptions {
  /** Picks the catalog endpoint (Keystone only); undefined: the first public one. */
  region: string | undefined
  /** Further tries after a transient failure (network, 5xx); a refusal is never retried. */
  retries: number
}

/** Logs in, without any cache. */
export async function login(credentials: SwiftCredentials, options: LoginOptions): Promise<SwiftSession> {
  try {
    return await withRetries(
      { retries: options.retries, transient: (error) => error instanceof TransientLoginError || isTransientError(error) },
      () => loginOnce(credentials, options.region),
    )
  } catch (error) {
    throw explainLoginFailure(credentials, error)
  }
}

function loginOnce(c: SwiftCredentials, region: string | undefined): Promise<SwiftSession> {
  switch (authVersion(c.authUrl)) {
    case 'v3':
      return loginV3(c, region)
    case 'v2.0':
      return loginV2(c, region)
    case 'v1':
      return loginV1(c)
  }
}

function explainLoginFailure(c: SwiftCredentials, error: unknown): JobError {
  if (error instanceof JobError) return error
  const version = authVersion(c.authUrl)
  const what = version === 'v1' ? 'Swift auth' : `Keystone ${version}`
  if (error instanceof TransportError) {
    return new SwiftAuthError(`cannot reach ${what} at ${c.authUrl} to log in user "${c.username}" (${error.code})`, { cause: error })
  }
  return new SwiftAuthError(`login of user "${c.username}" at ${what} ${c.authUrl} failed: ${(error as Error).message}`, { cause: error })
}

/** A 5xx (or 429) from the auth server: worth another try, and said as a refusal if it persists. */
class TransientLoginError extends SwiftAuthError {}

function endpoint(authUrl: string, path: string): URL {
  return new URL(authUrl.replace(/\/+$/, '') + path)
}

async function loginV3(c: SwiftCredentials, region: string | undefined): Promise<SwiftSession> {
  // The old agent's single `domain` field names the domain of the user and of the project.
  const domain = c.domain === '' ? { id: 'default' } : { name: c.domain }
  const body = {
    auth: {
      identity: { methods: ['password'], password: { user: { name: c.username, domain, password: c.password } } },
      scope: { project: { name: c.projectName, domain } },
    },
  }
  const res = await send({ method: 'POST', url: endpoint(c.authUrl, '/auth/tokens'), headers: jsonHeaders, body: JSON.stringify(body) })
  const text = await readText(res)
  if (res.status !== 201 && res.status !== 200) throw refused(c, 'v3', res, text)
  const token = header(res, 'x-subject-token')
  const parsed = parseJson(text) as V3TokenBody | undefined
  const catalog = parsed?.token?.catalog
  if (!token || !parsed?.token) throw unexpected(c, 'v3', 'no X-Subject-Token or token in the answer')
  const endpoints = (catalog ?? [])
    .filter((s) => s.type === 'object-store')
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.interface === 'public')
    .map((e) => ({ region: e.region_id ?? e.region, url: e.url }))
  return { token, storageUrl: pickEndpoint(c, endpoints, region), expiresAt: parseTime(parsed.token.expires_at) }
}

async function loginV2(c: SwiftCredentials, region: string | undefined): Promise<SwiftSession> {
  const body = { auth: { passwordCredentials: { username: c.username, password: c.password }, tenantName: c.projectName } }
  const res = await send({ method: 'POST', url: endpoint(c.authUrl, '/tokens'), headers: jsonHeaders, body: JSON.stringify(body) })
  const text = await readText(res)
  if (res.status !== 200 && res.status !== 201) throw refused(c, 'v2.0', res, text)
  const access = (parseJson(text) as V2TokenBody | undefined)?.access
  const token = access?.token?.id
  if (!token) throw unexpected(c, 'v2.0', 'no access.token.id in the answer')
  const endpoints = (access?.serviceCatalog ?? [])
    .filter((s) => s.type === 'object-store')
    .flatMap((s) => s.endpoints ?? [])
    .map((e) => ({ region: e.region, url: e.publicURL }))
  return { token, storageUrl: pickEndpoint(c, endpoints, region), expiresAt: parseTime(access?.token?.expires) }
}

async function loginV1(c: SwiftCredentials): Promise<SwiftSession> {
  const res = await send({ method: 'GET', url: new URL(c.authUrl), headers: { 'x-auth-user': c.username, 'x-auth-key': c.password } })
  const text = await readText(res, 64 * 1024)
  if (res.status < 200 || res.status > 299) throw refused(c, 'v1', res, text)
  const token = header(res, 'x-auth-token') ?? header(res, 'x-storage-token')
  const storageUrl = header(res, 'x-storage-url')
  if (!token || !storageUrl) throw unexpected(c, 'v1', 'no X-Auth-Token or X-Storage-Url in the answer')
  const seconds = Number(header(res, 'x-auth-token-expires'))
  return { token, storageUrl, expiresAt: Number.isFinite(seconds) && seconds > 0 ? Date.now() + seconds * 1000 : undefined }
}

const jsonHeaders = { 'content-type': 'application/json', accept: 'application/json' }

interface V3TokenBody {
  token?: {
    expires_at?: string
    catalog?: { type?: string; endpoints?: { interface?: string; region?: string; region_id?: string; url?: string }[] }[]
  }
}
interface V2TokenBody {
  access?: {
    token?: { id?: string; expires?: string }
    serviceCatalog?: { type?: string; endpoints?: { region?: string; publicURL?: string }[] }[]
  }
}

function pickEndpoint(
  c: SwiftCredentials,
  endpoints: { region: string | undefined; url: string | undefined }[],
  region: string | undefined,
): string {
  const usable = endpoints.filter((e): e is { region: string | undefined; url: string } => typeof e.url === 'string' && e.url !== '')
  const chosen = region === undefined ? usable[0] : usable.find((e) => e.region === region)
  if (chosen) return chosen.url.replace(/\/+$/, '')
  const scope = `project "${c.projectName}" of user "${c.username}" at ${c.authUrl}`
  if (usable.length === 0) throw new SwiftAuthError(`the Keystone catalog for ${scope} has no public object-store (Swift) endpoint`)
  const regions = [...new Set(usable.map((e) => e.region ?? '(none)'))].join(', ')
  throw new SwiftAuthError(
    `the Keystone catalog for ${scope} has no public object-store endpoint in region "${region}" (swift_region); it has: ${regions}`,
  )
}

function refused(c: SwiftCredentials, version: AuthVersion, res: HttpResponse, text: string): SwiftAuthError {
  const who =
    version === 'v3'
      ? `user "${c.username}" (domain "${c.domain || 'default'}", project "${c.projectName}")`
      : version === 'v2.0'
        ? `user "${c.username}" (tenant "${c.projectName}")`
        : `user "${c.username}"`
  const server = version === 'v1' ? 'Swift auth' : `Keystone ${version}`
  const answer = serverAnswer(res.status, text, [c.password])
  const hint =
    res.status === 401 || res.status === 403
      ? version === 'v1'
        ? '; check username and password'
        : '; check username, password, domain and project_name'
      : res.status === 404
        ? '; check the auth URL (and its version path: /v3, /v2.0 or /auth/v1.0)'
        : ''
  const message = `${server} at ${c.authUrl} refused the login of ${who}: ${answer}${hint}`
  return isTransientStatus(res.status) ? new TransientLoginError(message) : new SwiftAuthError(message)
}

function unexpected(c: SwiftCredentials, version: AuthVersion, what: string): SwiftAuthError {
  return new SwiftAuthError(`login of user "${c.username}" at ${c.authUrl} (${version}) gave an unusable answer: ${what}`)
}

/**
 * The server's answer in one short line: the status and Keystone's error message (JSON) or the
 * text of an HTML page. The secrets (the password, the tokens sent) are masked in case a server
 * ever echoes them: in the raw text, before tags and spaces are taken out of it (which would
 * change a secret holding them), again after JSON decoding, and before the cut (which would
 * leave a piece of one at the edge).
 */
export function serverAnswer(status: number, text: string, secrets: readonly string[] = []): string {
  const raw = maskSecrets(text, secrets)
  const json = parseJson(raw) as { error?: { message?: string; title?: string } } | undefined
  const detail =
    json?.error?.message !== undefined
      ? `${json.error.title ?? ''}: ${json.error.message}`.replace(/^: /, '')
      : raw.replace(/<[^>]*>/g, ' ')
  const line = maskSecrets(`${status} ${detail}`, secrets).replace(/\s+/g, ' ').trim()
  return line.length > 300 ? `${line.slice(0, 300)}…` : line
}

function header(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function parseTime(value: string | undefined): number | undefined {
  if (!value) return undefined
  // Keystone writes microseconds (…T12:00:00.000000Z) and v2.0 sometimes no zone: both are UTC.
  const iso = value.replace(/(\.\d{3})\d+/, '$1').replace(/^(\d{4}-\d\d-\d\dT[\d:.]+)$/, '$1Z')
  const ms = Date.parse(iso)
  return Number.isNaN(ms) ? undefined : ms
}

/** Renew a cached token this long before it expires (or at half its life, for short-lived ones). */
export const EXPIRY_MARGIN_MS = 5 * 60_000
const MAX_CACHED_SESSIONS = 256

type Login = (credentials: SwiftCredentials, options: LoginOptions) => Promise<SwiftSession>

interface CacheEntry {
  promise: Promise<SwiftSession>
  session?: SwiftSession
  renewAt?: number
}

/**
 * Tokens per (auth URL, domain, user, project, region, SHA-256 of the password): a wrong password
 * never matches the entry a right one made, so it cannot ride on a cached token. Concurrent jobs
 * with the same credentials share one login; a failed login is not cached.
 */
export class TokenCache {
  readonly #entries = new Map<string, CacheEntry>()
  readonly #login: Login
  readonly #now: () => number

  constructor(loginFn: Login = login, now: () => number = Date.now) {
    this.#login = loginFn
    this.#now = now
  }

  /** A session for these credentials: the cached one unless it is about to expire. */
  session(credentials: SwiftCredentials, options: LoginOptions): Promise<SwiftSession> {
    const key = cacheKey(credentials, options.region)
    const entry = this.#entries.get(key)
    if (entry && (entry.renewAt === undefined || this.#now() < entry.renewAt)) return entry.promise
    return this.#start(key, credentials, options)
  }

  /**
   * Swift answered 401 to `stale`'s token (expired or revoked early): log in again, unless another
   * request has already replaced that token or is logging in right now.
   */
  renew(credentials: SwiftCredentials, options: LoginOptions, stale: SwiftSession): Promise<SwiftSession> {
    const key = cacheKey(credentials, options.region)
    const entry = this.#entries.get(key)
    if (entry && entry.session !== stale) return entry.promise
    return this.#start(key, credentials, options)
  }

  get size(): number {
    return this.#entries.size
  }

  #start(key: string, credentials: SwiftCredentials, options: LoginOptions): Promise<SwiftSession> {
    const startedAt = this.#now()
    const entry: CacheEntry = { promise: this.#login(credentials, options) }
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    while (this.#entries.size > MAX_CACHED_SESSIONS) this.#entries.delete(this.#entries.keys().next().value as string)
    entry.promise.then(
      (session) => {
        entry.session = session
        if (session.expiresAt !== undefined) {
          const life = Math.max(0, session.expiresAt - startedAt)
          entry.renewAt = session.expiresAt - Math.min(EXPIRY_MARGIN_MS, life / 2)
        }
      },
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key)
      },
    )
    return entry.promise
  }
}

function cacheKey(c: SwiftCredentials, region: string | undefined): string {
  const passwordHash = createHash('sha256').update(c.password).digest('hex')
  return JSON.stringify([c.authUrl.replace(/\/+$/, ''), c.domain, c.username, c.projectName, region ?? null, passwordHash])
}

/** The agent's one cache: tokens outlive a job, so a series of jobs logs in once. */
export const tokenCache = new TokenCache()
