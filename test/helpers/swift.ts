// The real Swift and Keystone of test/servers/storage-up.sh, seen from a test: trigger
// destinations, direct access to the two Swift accounts (to create containers and look at what
// the agent wrote), token revocation, and a TCP proxy that breaks connections on purpose.
import { readFileSync } from 'node:fs'
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
          ? { authUrl: env.KEYSTONE_AUTH_URL, domain: env.KEYSTONE_DOMAIN, project_name: env.KEYSTONE_PROJECT, username: env.KEYSTONE_USER, password: env.KEYSTONE_PASSWORD }
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
      const res = await fetch(env.SWIFT_V1_AUTH_URL as string, { headers: { 'x-auth-user': env.SWIFT_V1_USER as string, 'x-auth-key': env.SWIFT_V1_KEY as string } })
      if (res.status !== 200) throw new Error(`tempauth login answered ${res.status}`)
      return { storageUrl: res.headers.get('x-storage-url') as string, token: res.headers.get('x-auth-token') as string }
    }
    return new SwiftAccount(await login(), login)
  }

  static async keystone(env: Record<string, string>): Promise<SwiftAccount> {
    const login = async () => ({
      storageUrl: env.SWIFT_KS_STORAGE_URL as string,
      token: await keystoneToken(env, env.KEYSTONE_USER as string, env.KEYSTONE_PASSWORD as string, env.KEYSTONE_DOMAIN as string, env.KEYSTONE_PROJECT as string),
    })
    return new SwiftAccount(await login(), login)
  }

  get storageUrl(): string {
    return this.#storageUrl
  }

  #url(container: string, object?: string, query = ''): string {
    const path = object === undefined ? encodeURIComponent(container) : `${encodeURIComponent(container)}/${object.split('/').map(encodeURIComponent).join('/')}`
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

  /** Deletes a container and everything in it (test cleanup). */
  async removeContainer(name: string): Promise<void> {
    for (const object of await this.list(name)) {
      await (await this.#fetch(() => this.#url(name, object), { method: 'DELETE' })).arrayBuffer()
    }
    await (await this.#fetch(() => this.#url(name), { method: 'DELETE' })).arrayBuffer()
  }
}

async function keystoneToken(env: Record<string, string>, user: string, password: string, domain: string, project: string): Promise<string> {
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

/**
 * Revokes every token of the lab's Keystone user, the way an operator's change would: disabling a
 * user revokes its tokens; it is enabled again at once. Swift's proxy caches validated tokens in
 * memcached, so that cache is flushed too. Keystone compares revocations by the second, so tokens
 * issued in the same second are revoked as well: wait a second before logging in again.
 */
export async function revokeKeystoneUserTokens(env: Record<string, string>): Promise<void> {
  const adminToken = await keystoneToken(env, 'admin', env.KEYSTONE_ADMIN_PASSWORD as string, 'Default', 'admin')
  const headers = { 'x-auth-token': adminToken, 'content-type': 'application/json' }
  const users = await fetch(`${env.KEYSTONE_AUTH_URL}/users?name=${encodeURIComponent(env.KEYSTONE_USER as string)}`, { headers })
  const user = ((await users.json()) as { users: { id: string; domain_id: string }[] }).users[0]
  if (!user) throw new Error(`no Keystone user ${env.KEYSTONE_USER}`)
  const patch = (enabled: boolean) =>
    fetch(`${env.KEYSTONE_AUTH_URL}/users/${user.id}`, { method: 'PATCH', headers, body: JSON.stringify({ user: { enabled } }) })
  try {
    const disabled = await patch(false)
    if (disabled.status !== 200) throw new Error(`disabling the Keystone user answered ${disabled.status}`)
  } finally {
    const enabled = await patch(true)
    if (enabled.status !== 200) throw new Error(`enabling the Keystone user again answered ${enabled.status}: fix it by hand or re-run storage-up`)
  }
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
 * on which the bytes sent towards the server pass `cutAfterBytes` in total. Everything before and
 * after passes untouched (so a client's cleanup after the cut reaches the server).
 */
export class CuttingProxy {
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  #forwarded = 0
  cuts = 0

  private constructor(server: net.Server) {
    this.#server = server
  }

  static async start(target: { host: string; port: number }, cutAfterBytes: number): Promise<CuttingProxy> {
    const server = net.createServer()
    const proxy = new CuttingProxy(server)
    server.on('connection', (client) => {
      const upstream = net.connect(target.port, target.host)
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s)
        s.on('close', () => proxy.#sockets.delete(s))
        s.on('error', () => undefined)
      }
      client.on('data', (chunk: Buffer) => {
        const before = proxy.#forwarded
        proxy.#forwarded += chunk.length
        if (proxy.cuts === 0 && before < cutAfterBytes && proxy.#forwarded >= cutAfterBytes) {
          proxy.cuts++
          client.resetAndDestroy()
          upstream.destroy()
          return
        }
        if (!upstream.write(chunk)) client.pause()
      })
      upstream.on('drain', () => client.resume())
      upstream.on('data', (chunk: Buffer) => {
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
