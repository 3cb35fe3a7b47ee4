// Keystone v3, v2.0 and v1 logins against small fake auth servers (the lab's Keystone has no
// v2.0 any more, and the error paths need answers a real server gives only when broken), and
// the token cache with an injected login.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  authVersion,
  login,
  serverAnswer,
  SwiftAuthError,
  TokenCache,
  type SwiftCredentials,
  type SwiftSession,
} from '../../../../src/storage/swift/keystone.ts'
import { closedPort } from '../../../helpers/swift.ts'

const PASSWORD = 'pw-Zq81-very-secret'

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: any
}

/** A fake auth server: each test sets `answer`; every request is recorded in `seen`. */
class FakeAuth {
  server = http.createServer()
  seen: Seen[] = []
  answer: (req: Seen) => { status: number; headers?: Record<string, string>; body?: unknown } = () => ({ status: 500 })

  async start(): Promise<void> {
    this.server.on('request', async (req, res) => {
      let text = ''
      for await (const chunk of req) text += chunk
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined }
      this.seen.push(seen)
      const { status, headers = {}, body } = this.answer(seen)
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body))
    })
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
  }
}

const v3Catalog = [
  { type: 'identity', endpoints: [{ interface: 'public', region_id: 'RegionOne', url: 'http://keystone/v3' }] },
  {
    type: 'object-store',
    endpoints: [
      { interface: 'internal', region_id: 'RegionOne', url: 'http://internal/v1/AUTH_p' },
      { interface: 'public', region_id: 'RegionOne', url: 'http://one/v1/AUTH_p/' },
      { interface: 'public', region_id: 'RegionTwo', url: 'http://two/v1/AUTH_p' },
    ],
  },
]

describe('authVersion', () => {
  it('follows the last path segment of the auth URL', () => {
    assert.equal(authVersion('https://keystone:5000/v3'), 'v3')
    assert.equal(authVersion('https://keystone:5000/v3/'), 'v3')
    assert.equal(authVersion('https://keystone:5000/identity/v2.0'), 'v2.0')
    assert.equal(authVersion('https://keystone:5000/v2'), 'v2.0')
    assert.equal(authVersion('http://swift:8080/auth/v1.0'), 'v1')
    assert.equal(authVersion('http://swift:8080/auth'), 'v1')
  })
})

describe('login', () => {
  const fake = new FakeAuth()
  before(() => fake.start())
  after(() => new Promise((resolve) => fake.server.close(resolve)))
  const credentials = (path: string, extra: Partial<SwiftCredentials> = {}): SwiftCredentials => ({
    authUrl: fake.url + path,
    domain: 'lab-domain',
    projectName: 'backup-project',
    username: 'backup-user',
    password: PASSWORD,
    ...extra,
  })

  it('Keystone v3: password method, user and project in the one domain, public endpoint of the first region', async () => {
    fake.seen = []
    fake.answer = () => ({
      status: 201,
      headers: { 'x-subject-token': 'tok-3' },
      body: { token: { expires_at: '2030-01-02T03:04:05.000000Z', catalog: v3Catalog } },
    })
    const session = await login(credentials('/v3'), { region: undefined, retries: 0 })
    assert.deepEqual(session, { token: 'tok-3', storageUrl: 'http://one/v1/AUTH_p', expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5) })
    const [req] = fake.seen
    assert.equal(req?.method, 'POST')
    assert.equal(req?.url, '/v3/auth/tokens')
    assert.deepEqual(req?.body, {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'backup-user', domain: { name: 'lab-domain' }, password: PASSWORD } },
        },
        scope: { project: { name: 'backup-project', domain: { name: 'lab-domain' } } },
      },
    })
    const two = await login(credentials('/v3/'), { region: 'RegionTwo', retries: 0 })
    assert.equal(two.storageUrl, 'http://two/v1/AUTH_p')
    assert.equal(fake.seen[1]?.url, '/v3/auth/tokens')
  })

  it('Keystone v3 without a domain uses the default domain', async () => {
    fake.seen = []
    fake.answer = () => ({ status: 201, headers: { 'x-subject-token': 't' }, body: { token: { catalog: v3Catalog } } })
    await login(credentials('/v3', { domain: '' }), { region: undefined, retries: 0 })
    assert.deepEqual(fake.seen[0]?.body.auth.scope.project.domain, { id: 'default' })
  })

  it('names the regions the catalog has when swift_region matches none', async () => {
    fake.answer = () => ({ status: 201, headers: { 'x-subject-token': 't' }, body: { token: { catalog: v3Catalog } } })
    await assert.rejects(login(credentials('/v3'), { region: 'RegionNine', retries: 0 }), (error: Error) => {
      assert.ok(error instanceof SwiftAuthError)
      assert.match(error.message, /no public object-store endpoint in region "RegionNine" \(swift_region\); it has: RegionOne, RegionTwo/)
      return true
    })
    fake.answer = () => ({ status: 201, headers: { 'x-subject-token': 't' }, body: { token: { catalog: [] } } })
    await assert.rejects(login(credentials('/v3'), { region: undefined, retries: 0 }), /has no public object-store \(Swift\) endpoint/)
  })

  it('Keystone v2.0: tenant = project_name, publicURL of the object-store', async () => {
    fake.seen = []
    fake.answer = () => ({
      status: 200,
      body: {
        access: {
          token: { id: 'tok-2', expires: '2030-01-02T03:04:05Z' },
          serviceCatalog: [{ type: 'object-store', endpoints: [{ region: 'RegionOne', publicURL: 'http://two-oh/v1/AUTH_t' }] }],
        },
      },
    })
    const session = await login(credentials('/v2.0'), { region: 'RegionOne', retries: 0 })
    assert.deepEqual(session, { token: 'tok-2', storageUrl: 'http://two-oh/v1/AUTH_t', expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5) })
    assert.equal(fake.seen[0]?.url, '/v2.0/tokens')
    assert.deepEqual(fake.seen[0]?.body, {
      auth: { passwordCredentials: { username: 'backup-user', password: PASSWORD }, tenantName: 'backup-project' },
    })
  })

  it('v1 tempauth: user and key headers, storage URL and lifetime from the answer', async () => {
    fake.seen = []
    fake.answer = () => ({
      status: 200,
      headers: { 'x-auth-token': 'AUTH_tk1', 'x-storage-url': 'http://swift/v1/AUTH_test', 'x-auth-token-expires': '600' },
    })
    const before = Date.now()
    const session = await login(credentials('/auth/v1.0', { username: 'test:tester' }), { region: 'ignored', retries: 0 })
    assert.equal(session.token, 'AUTH_tk1')
    assert.equal(session.storageUrl, 'http://swift/v1/AUTH_test')
    assert.ok(session.expiresAt! >= before + 600_000 && session.expiresAt! <= Date.now() + 600_000)
    assert.equal(fake.seen[0]?.method, 'GET')
    assert.equal(fake.seen[0]?.headers['x-auth-user'], 'test:tester')
    assert.equal(fake.seen[0]?.headers['x-auth-key'], PASSWORD)
  })

  it('a refusal names user, auth URL and Keystone’s answer, never the password, and is not retried', async () => {
    fake.seen = []
    fake.answer = () => ({
      status: 401,
      body: { error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' } },
    })
    await assert.rejects(login(credentials('/v3'), { region: undefined, retries: 3 }), (error: Error) => {
      assert.ok(error instanceof SwiftAuthError)
      assert.equal(
        error.message,
        `Keystone v3 at ${fake.url}/v3 refused the login of user "backup-user" (domain "lab-domain", project "backup-project"): 401 Unauthorized: The request you have made requires authentication.; check username, password, domain and project_name`,
      )
      assert.ok(!error.message.includes(PASSWORD))
      return true
    })
    assert.equal(fake.seen.length, 1)
    fake.answer = () => ({ status: 401, body: '<html><h1>Unauthorized</h1></html>' })
    await assert.rejects(
      login(credentials('/auth/v1.0'), { region: undefined, retries: 0 }),
      /Swift auth at http:\/\/127\.0\.0\.1:\d+\/auth\/v1\.0 refused the login of user "backup-user": 401 Unauthorized; check username and password/,
    )
  })

  it('retries a server error and reports it when it persists', async () => {
    fake.seen = []
    let calls = 0
    fake.answer = () =>
      ++calls < 3
        ? { status: 503, body: 'busy' }
        : { status: 201, headers: { 'x-subject-token': 'late' }, body: { token: { catalog: v3Catalog } } }
    assert.equal((await login(credentials('/v3'), { region: undefined, retries: 2 })).token, 'late')
    assert.equal(fake.seen.length, 3)
    fake.answer = () => ({ status: 503, body: 'busy' })
    await assert.rejects(
      login(credentials('/v3'), { region: undefined, retries: 1 }),
      /refused the login of user "backup-user" .*: 503 busy/,
    )
  })

  it('says when the auth server cannot be reached', async () => {
    const port = await closedPort()
    await assert.rejects(
      login({ ...credentials('/v3'), authUrl: `http://127.0.0.1:${port}/v3` }, { region: undefined, retries: 0 }),
      new RegExp(
        `^SwiftAuthError: cannot reach Keystone v3 at http://127\\.0\\.0\\.1:${port}/v3 to log in user "backup-user" \\(ECONNREFUSED\\)$`,
      ),
    )
  })
})

describe('serverAnswer', () => {
  it('keeps one short line of Keystone JSON or HTML and masks the secret', () => {
    assert.equal(serverAnswer(401, '{"error":{"message":"Nope.","title":"Unauthorized"}}'), '401 Unauthorized: Nope.')
    assert.equal(
      serverAnswer(404, '<html><h1>Not Found</h1><p>The resource could not be found.</p></html>'),
      '404 Not Found The resource could not be found.',
    )
    assert.equal(serverAnswer(400, `bad password ${PASSWORD}`, [PASSWORD]), '400 bad password ******')
    assert.ok(serverAnswer(500, 'x'.repeat(1000)).length <= 301)
  })

  it('masks a secret before the cut, the tag stripping and the space folding would change it', () => {
    const secret = 'tok  <b>en-Secret-0123456789'
    const edge = secret.replace(/\s+/g, ' ')
    for (let at = 270; at < 300; at++) {
      const answer = serverAnswer(500, `${'x'.repeat(at)}${secret}`, [secret])
      for (let n = 4; n <= edge.length; n++) assert.ok(!answer.includes(edge.slice(0, n)) || n < 6, `${at} ${answer}`)
    }
    const escaped = serverAnswer(401, JSON.stringify({ error: { message: `echo ${secret}`, title: 'Unauthorized' } }), [secret])
    assert.equal(escaped, '401 Unauthorized: echo ******')
    assert.equal(serverAnswer(500, `<p>${secret}</p>`, [secret]), '500 ******')
  })
})

describe('TokenCache', () => {
  const creds: SwiftCredentials = { authUrl: 'http://k/v3', domain: 'd', projectName: 'p', username: 'u', password: 'right' }
  const options = { region: undefined, retries: 0 }

  function counting(lifeMs: number | undefined, now: () => number) {
    const calls: SwiftCredentials[] = []
    const loginFn = async (c: SwiftCredentials): Promise<SwiftSession> => {
      calls.push(c)
      if (c.password !== 'right') throw new SwiftAuthError('refused')
      return { token: `t${calls.length}`, storageUrl: 'http://s', expiresAt: lifeMs === undefined ? undefined : now() + lifeMs }
    }
    return { calls, loginFn }
  }

  it('logs in once for the same credentials, concurrent callers included', async () => {
    const { calls, loginFn } = counting(3_600_000, Date.now)
    const cache = new TokenCache(loginFn)
    const [a, b] = await Promise.all([cache.session(creds, options), cache.session(creds, options)])
    assert.equal(a, b)
    assert.equal((await cache.session(creds, options)).token, 't1')
    assert.equal(calls.length, 1)
  })

  it('never lets a wrong password use the token of the right one, and caches no failure', async () => {
    const { calls, loginFn } = counting(3_600_000, Date.now)
    const cache = new TokenCache(loginFn)
    await cache.session(creds, options)
    await assert.rejects(cache.session({ ...creds, password: 'wrong' }, options), /refused/)
    await assert.rejects(cache.session({ ...creds, password: 'wrong' }, options), /refused/)
    assert.equal(calls.length, 3)
    assert.equal(cache.size, 1)
    // other user, project, domain, URL or region: other entries
    for (const other of [{ username: 'v' }, { projectName: 'q' }, { domain: 'e' }, { authUrl: 'http://other/v3' }])
      await cache.session({ ...creds, ...other }, options)
    await cache.session(creds, { region: 'RegionTwo', retries: 0 })
    assert.equal(cache.size, 6)
  })

  it('renews shortly before expiry: 5 minutes before, or at half the life of a short token', async () => {
    let clock = 1_000_000
    const { calls, loginFn } = counting(3_600_000, () => clock)
    const cache = new TokenCache(loginFn, () => clock)
    await cache.session(creds, options)
    clock += 3_600_000 - 5 * 60_000 - 1
    await cache.session(creds, options)
    assert.equal(calls.length, 1)
    clock += 2
    assert.equal((await cache.session(creds, options)).token, 't2')

    const short = counting(60_000, () => clock)
    const shortCache = new TokenCache(short.loginFn, () => clock)
    await shortCache.session(creds, options)
    clock += 29_000
    await shortCache.session(creds, options)
    clock += 2_000
    await shortCache.session(creds, options)
    assert.equal(short.calls.length, 2)
  })

  it('renews a token Swift refused once, however many requests saw the 401', async () => {
    const { calls, loginFn } = counting(undefined, Date.now)
    const cache = new TokenCache(loginFn)
    const stale = await cache.session(creds, options)
    const renewed = await Promise.all([
      cache.renew(creds, options, stale),
      cache.renew(creds, options, stale),
      cache.renew(creds, options, stale),
    ])
    assert.deepEqual(
      renewed.map((s) => s.token),
      ['t2', 't2', 't2'],
    )
    // a late 401 for the old token does not throw the new one away
    assert.equal((await cache.renew(creds, options, stale)).token, 't2')
    assert.equal(calls.length, 2)
    assert.equal((await cache.session(creds, options)).token, 't2')
  })
})
