// Swift for the tests. The real Swift and Keystone of test/servers/storage-up.sh, seen from a
// test: trigger destinations, direct access to the two Swift accounts (to create containers and
// look at what the agent wrote), token revocation, and a TCP proxy that breaks a connection on
// purpose. And FakeSwift, an in-memory stand-in for the unit tests of faults the real one never
// shows on request.
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { labEnv } from './storage.ts'

const LAB_DIR = process.env.LAB_DIR ?? '/tmp/osb-storage'

export type SwiftAuth = 'v3' | 'v1'

export interface SwiftLab {
  env: Record<string, string>
  /** A SWIFT trigger destination for the lab's Keystone v3 or v1 tempauth user. */
  destination: (auth: SwiftAuth, container: string, extra?: Record<string, unknown>) => Record<string, unknown>
  /** Direct access to the account the agent writes to with these credentials. */
  account: (auth: SwiftAuth) => Promise<SwiftAccount>
}

export function swiftLab(): SwiftLab {
  const env = labEnv()
  for (const key of ['SWIFT_V1_AUTH_URL', 'KEYSTONE_AUTH_URL', 'SWIFT_KS_STORAGE_URL']) {
    if (!env[key]) throw new Error(`${LAB_DIR}/env has no ${key}: run \`npm run servers:up\` (with Keystone)`)
  }
  return {
    env,
    destination(auth, container, extra = {}) {
      const credentials =
        auth === 'v3'
          ? {
              authUrl: env.KEYSTONE_AUTH_URL,
              domain: env.KEYSTONE_DOMAIN,
              project_name: env.KEYSTONE_PROJECT,
              username: env.KEYSTONE_USER,
              password: env.KEYSTONE_PASSWORD,
            }
          : { authUrl: env.SWIFT_V1_AUTH_URL, domain: null, project_name: null, username: env.SWIFT_V1_USER, password: env.SWIFT_V1_KEY }
      return { type: 'SWIFT', skipStorage: false, filenamePrefix: '', container_name: container, ...credentials, ...extra }
    },
    async account(auth) {
      return auth === 'v3' ? SwiftAccount.keystone(env) : SwiftAccount.tempauth(env)
    },
  }
}

export class SwiftAccount {
  #storageUrl: string
  #token: string
  readonly #login: () => Promise<{ storageUrl: string; token: string }>

  private constructor(session: { storageUrl: string; token: string }, login: () => Promise<{ storageUrl: string; token: string }>) {
    this.#storageUrl = session.storageUrl
    this.#token = session.token
    this.#login = login
  }

  static async tempauth(env: Record<string, string>): Promise<SwiftAccount> {
    const login = async () => {
      const res = await fetch(env.SWIFT_V1_AUTH_URL as string, {
        headers: { 'x-auth-user': env.SWIFT_V1_USER as string, 'x-auth-key': env.SWIFT_V1_KEY as string },
      })
      if (res.status !== 200) throw new Error(`tempauth login answered ${res.status}`)
      return { storageUrl: res.headers.get('x-storage-url') as string, token: res.headers.get('x-auth-token') as string }
    }
    return new SwiftAccount(await login(), login)
  }

  static async keystone(env: Record<string, string>): Promise<SwiftAccount> {
    const login = async () => ({
      storageUrl: env.SWIFT_KS_STORAGE_URL as string,
      token: await keystoneToken(
        env,
        env.KEYSTONE_USER as string,
        env.KEYSTONE_PASSWORD as string,
        env.KEYSTONE_DOMAIN as string,
        env.KEYSTONE_PROJECT as string,
      ),
    })
    return new SwiftAccount(await login(), login)
  }

  get storageUrl(): string {
    return this.#storageUrl
  }

  #url(container: string, object?: string, query = ''): string {
    const path =
      object === undefined
        ? encodeURIComponent(container)
        : `${encodeURIComponent(container)}/${object.split('/').map(encodeURIComponent).join('/')}`
    return `${this.#storageUrl}/${path}${query}`
  }

  /** The tests revoke tokens on purpose (memcached flush): log in again once on a 401. */
  async #fetch(url: () => string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(url(), { ...init, headers: { ...(init.headers as Record<string, string>), 'x-auth-token': this.#token } })
      if (res.status !== 401 || attempt > 0) return res
      await res.arrayBuffer()
      const session = await this.#login()
      this.#storageUrl = session.storageUrl
      this.#token = session.token
    }
  }

  async createContainer(name: string, headers: Record<string, string> = {}): Promise<void> {
    const res = await this.#fetch(() => this.#url(name), { method: 'PUT', headers })
    if (res.status !== 201 && res.status !== 202) throw new Error(`PUT container ${name} answered ${res.status}`)
  }

  async head(container: string, object?: string): Promise<{ status: number; headers: Headers }> {
    const res = await this.#fetch(() => this.#url(container, object), { method: 'HEAD' })
    return { status: res.status, headers: res.headers }
  }

  /** Object names in a container ([] when it does not exist). */
  async list(container: string, prefix = ''): Promise<string[]> {
    const res = await this.#fetch(() => this.#url(container, undefined, `?format=json&prefix=${encodeURIComponent(prefix)}`))
    if (res.status === 404 || res.status === 204) return []
    if (res.status !== 200) throw new Error(`GET container ${container} answered ${res.status}`)
    return ((await res.json()) as { name: string }[]).map((o) => o.name)
  }

  async get(container: string, object: string): Promise<Buffer> {
    const res = await this.#fetch(() => this.#url(container, object))
    if (res.status !== 200) throw new Error(`GET ${container}/${object} answered ${res.status}`)
    return Buffer.from(await res.arrayBuffer())
  }

  async put(container: string, object: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<void> {
    const res = await this.#fetch(() => this.#url(container, object), { method: 'PUT', body, headers })
    await res.arrayBuffer()
    if (res.status !== 201) throw new Error(`PUT ${container}/${object} answered ${res.status}`)
  }

  /** A plain DELETE (of a Static Large Object: its manifest only, the way the manager deletes). */
  async delete(container: string, object: string): Promise<void> {
    const res = await this.#fetch(() => this.#url(container, object), { method: 'DELETE' })
    await res.arrayBuffer()
    if (res.status !== 204) throw new Error(`DELETE ${container}/${object} answered ${res.status}`)
  }

  /** Deletes a container and everything in it (test cleanup). */
  async removeContainer(name: string): Promise<void> {
    for (const object of await this.list(name)) {
      await (await this.#fetch(() => this.#url(name, object), { method: 'DELETE' })).arrayBuffer()
    }
    await (await this.#fetch(() => this.#url(name), { method: 'DELETE' })).arrayBuffer()
  }
}

async function keystoneToken(
  env: Record<string, string>,
  user: string,
  password: string,
  domain: string,
  project: string,
): Promise<string> {
  const res = await fetch(`${env.KEYSTONE_AUTH_URL}/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { name: domain }, password } } },
        scope: { project: { name: project, domain: { name: domain } } },
      },
    }),
  })
  if (res.status !== 201) throw new Error(`Keystone login of ${user} answered ${res.status}`)
  return res.headers.get('x-subject-token') as string
}

/** A Keystone user of its own for a test that disturbs its user (member of the lab's project). */
export interface TemporaryKeystoneUser {
  username: string
  password: string
  remove(): Promise<void>
}

/**
 * Creates a user in the lab's domain with the member role on the lab's project. Tests that revoke
 * a user's tokens use one: the test files run in parallel, and disabling the shared lab user made
 * every other Keystone login of that moment fail with 401.
 */
export async function createKeystoneUser(env: Record<string, string>): Promise<TemporaryKeystoneUser> {
  const admin = await keystoneAdmin(env)
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${env.KEYSTONE_AUTH_URL}${path}`, { headers: admin.headers })
    if (res.status !== 200) throw new Error(`Keystone GET ${path} answered ${res.status}`)
    return (await res.json()) as T
  }
  const [domain] = (await get<{ domains: { id: string }[] }>(`/domains?name=${encodeURIComponent(env.KEYSTONE_DOMAIN as string)}`)).domains
  const [role] = (await get<{ roles: { id: string }[] }>('/roles?name=member')).roles
  if (!domain || !role) throw new Error('the lab has no Keystone domain or member role: run `npm run servers:up`')
  const username = `test-user-${randomUUID().slice(0, 8)}`
  const password = randomUUID()
  const created = await fetch(`${env.KEYSTONE_AUTH_URL}/users`, {
    method: 'POST',
    headers: admin.headers,
    body: JSON.stringify({ user: { name: username, password, domain_id: domain.id, enabled: true } }),
  })
  if (created.status !== 201) throw new Error(`creating a Keystone user answered ${created.status}`)
  const { user } = (await created.json()) as { user: { id: string } }
  const granted = await fetch(`${env.KEYSTONE_AUTH_URL}/projects/${env.KEYSTONE_PROJECT_ID}/users/${user.id}/roles/${role.id}`, {
    method: 'PUT',
    headers: admin.headers,
  })
  if (granted.status !== 204) throw new Error(`granting the member role answered ${granted.status}`)
  return {
    username,
    password,
    async remove() {
      const { headers } = await keystoneAdmin(env)
      await (await fetch(`${env.KEYSTONE_AUTH_URL}/users/${user.id}`, { method: 'DELETE', headers })).arrayBuffer()
    },
  }
}

async function keystoneAdmin(env: Record<string, string>): Promise<{ headers: Record<string, string> }> {
  const token = await keystoneToken(env, 'admin', env.KEYSTONE_ADMIN_PASSWORD as string, 'Default', 'admin')
  return { headers: { 'x-auth-token': token, 'content-type': 'application/json' } }
}

/**
 * Revokes every token of a Keystone user, the way an operator's change would: disabling a user
 * revokes its tokens; it is enabled again at once. Swift's proxy caches validated tokens in
 * memcached, so that cache is flushed too. Keystone compares revocations by the second, so tokens
 * issued in the same second are revoked as well: wait a second before logging in again. Only for
 * a user of the test's own (createKeystoneUser): logins of that user fail meanwhile.
 */
export async function revokeKeystoneUserTokens(env: Record<string, string>, username: string): Promise<void> {
  const { headers } = await keystoneAdmin(env)
  const users = await fetch(`${env.KEYSTONE_AUTH_URL}/users?name=${encodeURIComponent(username)}`, { headers })
  const user = ((await users.json()) as { users: { id: string; domain_id: string }[] }).users[0]
  if (!user) throw new Error(`no Keystone user ${username}`)
  const patch = (enabled: boolean) =>
    fetch(`${env.KEYSTONE_AUTH_URL}/users/${user.id}`, { method: 'PATCH', headers, body: JSON.stringify({ user: { enabled } }) })
  // The user is enabled again whatever disabling did; a failure to enable it is the one reported.
  let disableFailure: { error: unknown } | undefined
  try {
    const disabled = await patch(false)
    if (disabled.status !== 200) throw new Error(`disabling the Keystone user answered ${disabled.status}`)
  } catch (error) {
    disableFailure = { error }
  }
  const enabled = await patch(true)
  if (enabled.status !== 200) throw new Error(`enabling the Keystone user again answered ${enabled.status}`)
  if (disableFailure) throw disableFailure.error
  await flushMemcached()
}

/**
 * Empties the lab's memcached: tempauth keeps its tokens there (so every v1 token is revoked) and
 * keystonemiddleware its validated Keystone tokens.
 */
export async function flushMemcached(): Promise<void> {
  const conf = readFileSync(`${LAB_DIR}/etc/proxy-server.conf`, 'utf8')
  const match = /memcache_servers\s*=\s*([\d.]+):(\d+)/.exec(conf)
  if (!match) throw new Error('no memcache_servers in the lab proxy config')
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect(Number(match[2]), match[1] as string, () => socket.write('flush_all\r\n'))
    socket.setTimeout(5000, () => socket.destroy(new Error('memcached did not answer')))
    socket.once('data', (data) => {
      socket.end()
      if (data.toString().startsWith('OK')) resolve()
      else reject(new Error(`memcached answered ${data.toString().trim()}`))
    })
    socket.once('error', reject)
  })
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * A TCP proxy on 127.0.0.1 in front of a real server that cuts one connection on purpose: the one
 * on which the bytes sent towards the server (or with `towards: 'client'`, towards the client: a
 * download) pass `cutAfterBytes` in total. Everything before and after passes untouched (so a
 * client's cleanup or resume after the cut reaches the server).
 */
export class CuttingProxy {
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  #forwarded = 0
  cuts = 0

  private constructor(server: net.Server) {
    this.#server = server
  }

  static async start(
    target: { host: string; port: number },
    cutAfterBytes: number,
    towards: 'server' | 'client' = 'server',
  ): Promise<CuttingProxy> {
    const server = net.createServer()
    const proxy = new CuttingProxy(server)
    server.on('connection', (client) => {
      const upstream = net.connect(target.port, target.host)
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s)
        s.on('close', () => proxy.#sockets.delete(s))
        s.on('error', () => undefined)
      }
      /** Counts bytes going one way; true when this chunk is the one to cut at (the connection is then gone). */
      const cutHere = (chunk: Buffer): boolean => {
        const before = proxy.#forwarded
        proxy.#forwarded += chunk.length
        if (proxy.cuts > 0 || before >= cutAfterBytes || proxy.#forwarded < cutAfterBytes) return false
        proxy.cuts++
        client.resetAndDestroy()
        upstream.destroy()
        return true
      }
      client.on('data', (chunk: Buffer) => {
        if (towards === 'server' && cutHere(chunk)) return
        if (!upstream.write(chunk)) client.pause()
      })
      upstream.on('drain', () => client.resume())
      upstream.on('data', (chunk: Buffer) => {
        if (towards === 'client' && cutHere(chunk)) return
        if (!client.write(chunk)) upstream.pause()
      })
      client.on('drain', () => upstream.resume())
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise((resolve) => this.#server.close(resolve))
  }
}

/**
 * A small in-memory Swift with v1 auth, for unit tests of what the real one never does on
 * request: a wrong ETag, corrupt bytes, a token that dies mid-transfer, a 503, a body cut off.
 * Only what the agent uses: containers, objects, SLO manifests, listings by prefix.
 */
export class FakeSwift {
  readonly #server: http.Server
  readonly #tombstones = new Map<string, number>()
  readonly containers = new Map<string, Map<string, FakeObject>>()
  readonly tokens = new Set<string>()
  logins = 0
  /** Every request after auth, as `METHOD path?query`. */
  readonly log: string[] = []
  /** Return a (wrong) ETag for PUTs whose object name matches. */
  wrongEtagFor: RegExp | undefined
  /** Flip a byte of GET bodies. */
  corruptDownloads = false
  /** Answer this status (once per entry) to PUTs whose object name matches. */
  readonly failPuts: { match: RegExp; status: number }[] = []
  /** Send half of the next GET body, then cut the connection. */
  cutNextDownload = false
  /** Bodies of PUTs that were answered 401 before the body was read (Expect: 100-continue). */
  refusedBeforeBody = 0
  /** Slow each PUT down by this many ms (to cancel mid-upload). */
  putDelayMs = 0
  /** Revoke every token when a request `METHOD /path` matches, once (before checking its token). */
  revokeOnce: RegExp | undefined
  /** Sees every request as `METHOD /path?query` when it arrives. */
  onArrival: ((line: string) => void) | undefined

  private constructor(server: http.Server) {
    this.#server = server
  }

  static async start(): Promise<FakeSwift> {
    const server = http.createServer()
    const fake = new FakeSwift(server)
    // Decide on 100-continue like Swift's proxy: auth first, then ask for the body.
    server.on('checkContinue', (req, res) => {
      fake.#maybeRevoke(req)
      if (!fake.#authorized(req)) {
        fake.refusedBeforeBody++
        res.writeHead(401, { 'content-type': 'text/html' }).end('<html><h1>Unauthorized</h1></html>')
        return
      }
      res.writeContinue()
      fake.#serve(req, res)
    })
    server.on('request', (req, res) => {
      fake.#maybeRevoke(req)
      fake.#serve(req, res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return fake
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  get authUrl(): string {
    return `${this.url}/auth/v1.0`
  }

  /** Every token given so far stops working (expired or revoked). */
  revokeTokens(): void {
    this.tokens.clear()
  }

  object(container: string, name: string): FakeObject | undefined {
    return this.containers.get(container)?.get(name)
  }

  names(container: string): string[] {
    return [...(this.containers.get(container)?.keys() ?? [])].sort()
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise((resolve) => this.#server.close(resolve))
  }

  #maybeRevoke(req: http.IncomingMessage): void {
    this.onArrival?.(`${req.method} ${req.url}`)
    if (this.revokeOnce?.test(`${req.method} ${decodeURIComponent(new URL(req.url ?? '/', this.url).pathname)}`)) {
      this.revokeOnce = undefined
      this.revokeTokens()
    }
  }

  #authorized(req: http.IncomingMessage): boolean {
    return this.tokens.has(String(req.headers['x-auth-token']))
  }

  /** A client that goes away mid-request (aborted, cut) just ends that request. */
  #serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.#handle(req, res).catch(() => res.destroy())
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Like Swift's X-Timestamp: taken when the request arrives. A PUT that finishes after a
    // later DELETE of the same name loses (Swift's object servers answer it 409).
    const arrived = performance.now()
    const url = new URL(req.url ?? '/', this.url)
    if (url.pathname === '/auth/v1.0') {
      if (req.headers['x-auth-user'] !== 'fake:user' || req.headers['x-auth-key'] !== 'fake-key')
        return void res.writeHead(401).end('Unauthorized')
      const token = `tk${++this.logins}`
      this.tokens.add(token)
      return void res
        .writeHead(200, { 'x-auth-token': token, 'x-storage-url': `${this.url}/v1/AUTH_fake`, 'x-auth-token-expires': '3600' })
        .end()
    }
    if (!this.#authorized(req)) {
      await drainRequest(req)
      return void res.writeHead(401).end('Unauthorized')
    }
    const match = /^\/v1\/AUTH_fake\/([^/]+)(?:\/(.+))?$/.exec(url.pathname)
    if (!match) return void res.writeHead(404).end()
    const container = decodeURIComponent(match[1] as string)
    const name = match[2] === undefined ? undefined : decodeURIComponent(match[2])
    this.log.push(`${req.method} ${container}${name === undefined ? '' : `/${name}`}${url.search}`)
    const objects = this.containers.get(container)
    if (name === undefined) return this.#container(req, res, container, objects, url)
    if (!objects) {
      await drainRequest(req)
      return void res.writeHead(404).end('<html><h1>Not Found</h1></html>')
    }
    switch (req.method) {
      case 'PUT': {
        const body = await readRequest(req)
        if (this.putDelayMs) await new Promise((resolve) => setTimeout(resolve, this.putDelayMs))
        const failure = this.failPuts.findIndex((f) => f.match.test(name))
        if (failure >= 0) {
          const { status } = this.failPuts.splice(failure, 1)[0] as { status: number }
          return void res.writeHead(status).end('Service Unavailable')
        }
        if (url.searchParams.get('multipart-manifest') === 'put') {
          const entries = JSON.parse(body.toString()) as { path: string; etag: string; size_bytes: number }[]
          const parts = entries.map((e) => {
            const [, segContainer, ...rest] = e.path.split('/')
            const segment = this.object(segContainer as string, rest.join('/'))
            return segment?.etag === e.etag ? segment : undefined
          })
          if (parts.some((p) => p === undefined)) return void res.writeHead(400).end('Bad manifest: a segment is missing or differs')
          const etag = md5(parts.map((p) => p!.etag).join(''))
          objects.set(name, {
            data: Buffer.concat(parts.map((p) => p!.data)),
            etag,
            manifest: entries.map((e) => ({ name: e.path, bytes: e.size_bytes, hash: e.etag })),
            metadata: objectMetadata(req),
          })
          return void res.writeHead(201, { etag: `"${etag}"` }).end()
        }
        if ((this.#tombstones.get(`${container}/${name}`) ?? -1) > arrived) return void res.writeHead(409).end('Conflict')
        const etag = md5(body)
        objects.set(name, { data: body, etag, metadata: objectMetadata(req) })
        return void res.writeHead(201, { etag: this.wrongEtagFor?.test(name) ? md5('something else') : etag }).end()
      }
      case 'GET':
      case 'HEAD': {
        const object = objects.get(name)
        if (!object) return void res.writeHead(404).end()
        const slo = { ...object.metadata, ...(object.manifest ? { 'x-static-large-object': 'True' } : {}) }
        if (url.searchParams.get('multipart-manifest') === 'get' && object.manifest) {
          return void res.writeHead(200, { 'content-type': 'application/json', ...slo }).end(JSON.stringify(object.manifest))
        }
        const etag = object.manifest ? `"${object.etag}"` : object.etag
        let data = object.data
        if (this.corruptDownloads && data.length > 0) {
          data = Buffer.from(data)
          data[0] = (data[0] as number) ^ 0xff
        }
        const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''))
        if (range) {
          if (req.headers['if-match'] !== `"${object.etag}"`) return void res.writeHead(412).end()
          const start = Number(range[1])
          res.writeHead(206, {
            etag,
            'content-length': data.length - start,
            'content-range': `bytes ${start}-${data.length - 1}/${data.length}`,
            ...slo,
          })
          return void res.end(req.method === 'HEAD' ? undefined : data.subarray(start))
        }
        res.writeHead(200, { etag, 'content-length': data.length, ...slo })
        if (req.method === 'HEAD') return void res.end()
        if (this.cutNextDownload) {
          this.cutNextDownload = false
          res.write(data.subarray(0, Math.floor(data.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20))
          return
        }
        return void res.end(data)
      }
      case 'DELETE':
        this.#tombstones.set(`${container}/${name}`, arrived)
        return void res.writeHead(objects.delete(name) ? 204 : 404).end()
    }
    res.writeHead(405).end()
  }

  async #container(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    container: string,
    objects: Map<string, FakeObject> | undefined,
    url: URL,
  ) {
    await drainRequest(req)
    switch (req.method) {
      case 'HEAD':
        return void res.writeHead(objects ? 204 : 404).end()
      case 'PUT':
        if (objects) return void res.writeHead(202).end()
        this.containers.set(container, new Map())
        return void res.writeHead(201).end()
      case 'GET': {
        if (!objects) return void res.writeHead(404).end()
        const prefix = url.searchParams.get('prefix') ?? ''
        const marker = url.searchParams.get('marker') ?? ''
        const names = [...objects.keys()].sort().filter((n) => n.startsWith(prefix) && n > marker)
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(names.map((n) => ({ name: n }))))
      }
    }
    res.writeHead(405).end()
  }
}

export interface FakeObject {
  data: Buffer
  etag: string
  /** x-object-meta-* headers as sent */
  metadata?: Record<string, string>
  manifest?: { name: string; bytes: number; hash: string }[]
}

function objectMetadata(req: http.IncomingMessage): Record<string, string> {
  return Object.fromEntries(
    Object.entries(req.headers)
      .filter(([k]) => k.startsWith('x-object-meta-'))
      .map(([k, v]) => [k, String(v)]),
  )
}

function md5(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex')
}

async function readRequest(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

async function drainRequest(req: http.IncomingMessage): Promise<void> {
  for await (const _ of req);
}
