// The Swift backend end to end: the real agent process, the real Swift proxies and Keystone of
// test/servers/storage-up.sh. Nothing here is skipped: without the servers these tests fail.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'
import { uniqueName } from '../helpers/storage.ts'
import {
  closedPort,
  createKeystoneUser,
  CuttingProxy,
  flushMemcached,
  revokeKeystoneUserTokens,
  swiftLab,
  type SwiftAccount,
  type SwiftAuth,
} from '../helpers/swift.ts'

const MiB = 1024 * 1024
/** The backup script copies the file named by the request parameter `source`; restore copies to `target`. */
const SCRIPTS = { backup: 'cp "$source" "$5.bin"', restore: 'cp "$5" "$target"' }
const SMALL_SEGMENTS = { swift_segment_bytes: String(5 * MiB), swift_segment_threshold_bytes: String(5 * MiB) }

describe('Swift storage', () => {
  const lab = swiftLab()
  const env = lab.env
  let agent: Agent
  let work: string
  const accounts = {} as Record<SwiftAuth, SwiftAccount>
  const containers = { v3: uniqueName('osb-ks'), v1: uniqueName('osb-v1') }
  const wrongPasswords: string[] = []
  const cleanups: (() => Promise<unknown>)[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'osb-swift-test-'))
    accounts.v3 = await lab.account('v3')
    accounts.v1 = await lab.account('v1')
    for (const auth of ['v3', 'v1'] as const) {
      await accounts[auth].createContainer(containers[auth])
      cleanups.push(
        () => accounts[auth].removeContainer(containers[auth]),
        () => accounts[auth].removeContainer(`${containers[auth]}_segments`),
      )
    }
    // One retry keeps the failure cases fast while still exercising the retry path.
    agent = await startAgent({ env: { ...SMALL_SEGMENTS, storage_retries: '1' }, scripts: SCRIPTS })
  })

  after(async () => {
    await agent?.stop()
    for (const cleanup of cleanups) await cleanup().catch(() => undefined)
    await rm(work, { recursive: true, force: true })
  })

  async function sourceFile(bytes: number): Promise<{ path: string; data: Buffer }> {
    const data = randomBytes(bytes)
    const path = join(work, `source-${managerId()}`)
    await writeFile(path, data)
    return { path, data }
  }

  async function backup(on: Agent, destination: Record<string, unknown>, source: string): Promise<any> {
    const id = managerId()
    const res = await on.request('POST', '/backup', managerBackupBody(id, destination, { parameters: { source } }))
    assert.equal(res.status, 201, res.text)
    return on.waitFor('backup', id)
  }

  async function restore(on: Agent, destination: Record<string, unknown>, filename: string): Promise<{ body: any; target: string }> {
    const id = managerId()
    const target = join(work, `restored-${id}`)
    const res = await on.request('PUT', '/restore', managerRestoreBody(id, { ...destination, filename }, { parameters: { target } }))
    assert.equal(res.status, 201, res.text)
    return { body: await on.waitFor('restore', id), target }
  }

  async function roundTrip(auth: SwiftAuth, bytes: number, on = agent, destination = lab.destination(auth, containers[auth])) {
    const source = await sourceFile(bytes)
    const backedUp = await backup(on, destination, source.path)
    assert.equal(backedUp.status, 'SUCCEEDED', backedUp.error_message)
    assert.equal(backedUp.filesize.size, bytes)
    const restored = await restore(on, destination, backedUp.filename)
    assert.equal(restored.body.status, 'SUCCEEDED', restored.body.error_message)
    assert.ok((await readFile(restored.target)).equals(source.data), 'the restored file differs from the backup')
    return { filename: backedUp.filename as string, source }
  }

  for (const auth of ['v3', 'v1'] as const) {
    it(`backs up and restores byte-exact through ${auth === 'v3' ? 'Keystone v3' : 'v1 tempauth'}`, async () => {
      const { filename, source } = await roundTrip(auth, 300 * 1024 + 7)
      // the bare file name, no prefix, as a plain object
      const stored = await accounts[auth].get(containers[auth], filename)
      assert.ok(stored.equals(source.data))
      const head = await accounts[auth].head(containers[auth], filename)
      assert.equal(head.headers.get('x-static-large-object'), null)
    })
  }

  it('stores a file above the threshold as a Static Large Object and restores it byte-exact', async () => {
    const { filename, source } = await roundTrip('v3', 23 * MiB)
    const head = await accounts.v3.head(containers.v3, filename)
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('x-static-large-object'), 'True')
    assert.equal(Number(head.headers.get('content-length')), 23 * MiB)
    // the SHA-256 of the whole file travels with the manifest, for the restore to check
    assert.equal(head.headers.get('x-object-meta-sha256'), createHash('sha256').update(source.data).digest('hex'))
    const segments = await accounts.v3.list(`${containers.v3}_segments`, `${filename}/slo/`)
    assert.equal(segments.length, 5, `segments: ${segments.join(', ')}`)
  })

  it('fails a wrong password with user, auth URL and Keystone’s answer, even with a token cached for the right one', async () => {
    // a good job first, so a token for this user is in the agent's cache
    await roundTrip('v3', 1000)
    const wrong = `wrong-${randomBytes(6).toString('hex')}`
    wrongPasswords.push(wrong)
    const source = await sourceFile(1000)
    const body = await backup(agent, lab.destination('v3', containers.v3, { password: wrong }), source.path)
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, new RegExp(`user "${env.KEYSTONE_USER}"`))
    assert.ok(body.error_message.includes(env.KEYSTONE_AUTH_URL), body.error_message)
    assert.match(body.error_message, /401 Unauthorized: The request you have made requires authentication/)
    assert.ok(!body.error_message.includes(wrong))
    // v1 tempauth says who and where too
    const v1 = await backup(agent, lab.destination('v1', containers.v1, { password: wrong }), source.path)
    assert.equal(v1.status, 'FAILED')
    assert.ok(
      v1.error_message.includes(`user "${env.SWIFT_V1_USER}"`) && v1.error_message.includes(env.SWIFT_V1_AUTH_URL),
      v1.error_message,
    )
    agent.assertNoSecrets([wrong, env.KEYSTONE_PASSWORD as string, env.SWIFT_V1_KEY as string])
  })

  it('fails clearly when the container does not exist, and creates nothing', async () => {
    const missing = uniqueName('osb-missing')
    const source = await sourceFile(6 * MiB) // above the threshold: no segment may be written either
    const body = await backup(agent, lab.destination('v3', missing), source.path)
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, new RegExp(`container "${missing}" does not exist in Swift account ${env.SWIFT_KS_STORAGE_URL}`))
    assert.equal((await accounts.v3.head(missing)).status, 404)
    assert.equal((await accounts.v3.head(`${missing}_segments`)).status, 404)
  })

  it('fails a restore of an object that does not exist', async () => {
    const { body } = await restore(agent, lab.destination('v1', containers.v1), 'no-such-backup.sql')
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, new RegExp(`object "no-such-backup.sql" does not exist in container "${containers.v1}"`))
  })

  it('fails fast when the auth endpoint is unreachable', async () => {
    const port = await closedPort()
    const source = await sourceFile(1000)
    const started = Date.now()
    const body = await backup(agent, lab.destination('v3', containers.v3, { authUrl: `http://127.0.0.1:${port}/v3` }), source.path)
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, new RegExp(`cannot reach Keystone v3 at http://127.0.0.1:${port}/v3 .*ECONNREFUSED`))
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`)
  })

  it('fails fast when the storage endpoint goes away after a login', async () => {
    // tempauth builds the storage URL from the Host the client used: through the proxy, it is the proxy
    const proxy = await CuttingProxy.start(
      { host: '127.0.0.1', port: Number(new URL(env.SWIFT_V1_AUTH_URL as string).port) },
      Number.MAX_SAFE_INTEGER,
    )
    const destination = lab.destination('v1', containers.v1, { authUrl: `http://127.0.0.1:${proxy.port}/auth/v1.0` })
    await roundTrip('v1', 1000, agent, destination)
    const port = proxy.port
    await proxy.close()
    const source = await sourceFile(1000)
    const started = Date.now()
    const body = await backup(agent, destination, source.path)
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, new RegExp(`cannot reach http://127.0.0.1:${port}/v1/AUTH_\\w+ \\(ECONNREFUSED\\)`))
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`)
  })

  it('fails with a quota message, and an SLO that hits the quota leaves no segments', async () => {
    const container = uniqueName('osb-quota')
    await accounts.v1.createContainer(container, { 'x-container-meta-quota-bytes': '1000' })
    // the segments container refuses every 5 MiB segment (concurrent PUTs would all pass a quota
    // that only the sum exceeds: Swift checks each against the bytes already stored)
    await accounts.v1.createContainer(`${container}_segments`, { 'x-container-meta-quota-bytes': String(4 * MiB) })
    cleanups.push(
      () => accounts.v1.removeContainer(container),
      () => accounts.v1.removeContainer(`${container}_segments`),
    )
    const small = await backup(agent, lab.destination('v1', container), (await sourceFile(4000)).path)
    assert.equal(small.status, 'FAILED')
    assert.match(small.error_message, /quota exceeded or object too large \(413 Upload exceeds quota\.\)/)
    const large = await backup(agent, lab.destination('v1', container), (await sourceFile(23 * MiB)).path)
    assert.equal(large.status, 'FAILED')
    assert.match(large.error_message, /segment \d of 5.*413 Upload exceeds quota/)
    assert.deepEqual(await accounts.v1.list(`${container}_segments`), [])
    assert.deepEqual(await accounts.v1.list(container), [])
  })

  /** One backup job that must succeed; the object is checked in the account. */
  async function backupSucceeds(auth: SwiftAuth, credentials: Record<string, string> = {}): Promise<void> {
    const source = await sourceFile(2000)
    const body = await backup(agent, lab.destination(auth, containers[auth], credentials), source.path)
    assert.equal(body.status, 'SUCCEEDED', body.error_message)
    assert.ok((await accounts[auth].get(containers[auth], body.filename)).equals(source.data))
  }

  it('renews a Keystone token revoked between two jobs', async () => {
    // A user of its own: revoking disables the user for a moment, and other test files log in
    // as the lab user at the same time.
    const user = await createKeystoneUser(env)
    try {
      const credentials = { username: user.username, password: user.password }
      await backupSucceeds('v3', credentials) // the agent holds a token now
      await revokeKeystoneUserTokens(env, user.username)
      await new Promise((resolve) => setTimeout(resolve, 1100)) // Keystone revokes by the second
      await backupSucceeds('v3', credentials) // 401 with the cached token, one new login, done
    } finally {
      await user.remove()
    }
  })

  it('renews a v1 token revoked between two jobs', async () => {
    await backupSucceeds('v1')
    await flushMemcached() // tempauth keeps its tokens there: the agent's cached token is now unknown
    await backupSucceeds('v1')
  })

  // Segments 1-4 (20 MiB) go up together; the cut falls into the last one, after they are stored.
  const CUT_AT = 21.5 * MiB

  it('retries a segment whose connection is cut, and the result is byte-exact with no stray segments', async () => {
    const proxy = await CuttingProxy.start({ host: '127.0.0.1', port: Number(new URL(env.SWIFT_V1_AUTH_URL as string).port) }, CUT_AT)
    try {
      const destination = lab.destination('v1', containers.v1, { authUrl: `http://127.0.0.1:${proxy.port}/auth/v1.0` })
      const { filename } = await roundTrip('v1', 23 * MiB, agent, destination)
      assert.equal(proxy.cuts, 1)
      assert.equal((await accounts.v1.list(`${containers.v1}_segments`, `${filename}/slo/`)).length, 5)
    } finally {
      await proxy.close()
    }
  })

  it('resumes a restore whose connection is cut mid-body, and the file is byte-exact and verified', async () => {
    const { filename, source } = await roundTrip('v1', 12 * MiB + 3)
    // Cut 7 MiB into what the proxy sends back: in the body of the restore's GET (the login's answer is small).
    const proxy = await CuttingProxy.start(
      { host: '127.0.0.1', port: Number(new URL(env.SWIFT_V1_AUTH_URL as string).port) },
      7 * MiB,
      'client',
    )
    try {
      const destination = lab.destination('v1', containers.v1, { authUrl: `http://127.0.0.1:${proxy.port}/auth/v1.0` })
      const restored = await restore(agent, destination, filename)
      assert.equal(restored.body.status, 'SUCCEEDED', restored.body.error_message)
      assert.equal(restored.body.checksum_verified, true)
      assert.equal(proxy.cuts, 1)
      assert.ok((await readFile(restored.target)).equals(source.data), 'the restored file differs from the backup')
    } finally {
      await proxy.close()
    }
  })

  it('deletes the segments it wrote when an SLO upload breaks off for good', async () => {
    const container = uniqueName('osb-cut') // its own: the job before may have used the same file name
    await accounts.v1.createContainer(container)
    cleanups.push(
      () => accounts.v1.removeContainer(container),
      () => accounts.v1.removeContainer(`${container}_segments`),
    )
    const proxy = await CuttingProxy.start({ host: '127.0.0.1', port: Number(new URL(env.SWIFT_V1_AUTH_URL as string).port) }, CUT_AT)
    const strict = await startAgent({ env: { ...SMALL_SEGMENTS, storage_retries: '0' }, scripts: SCRIPTS })
    try {
      const destination = lab.destination('v1', container, { authUrl: `http://127.0.0.1:${proxy.port}/auth/v1.0` })
      const body = await backup(strict, destination, (await sourceFile(23 * MiB)).path)
      assert.equal(body.status, 'FAILED')
      assert.equal(proxy.cuts, 1)
      assert.match(
        body.error_message,
        /upload of \S+ \(segment \d of 5\) failed: the connection to http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_test broke off/,
      )
      assert.equal((await accounts.v1.head(`${container}_segments`)).status, 204, 'the segments container was created')
      assert.deepEqual(await accounts.v1.list(`${container}_segments`), [])
      assert.deepEqual(await accounts.v1.list(container), [])
      strict.assertNoSecrets([env.SWIFT_V1_KEY as string])
    } finally {
      await strict.stop()
      await proxy.close()
    }
  })

  it('never writes a Swift password to its output', () => {
    agent.assertNoSecrets([env.KEYSTONE_PASSWORD as string, env.SWIFT_V1_KEY as string, ...wrongPasswords])
  })
})
