// TLS for the API (tls_cert_file, tls_key_file), client certificates (tls_client_ca_file), and
// certificate reload on SIGHUP, with certificates this test makes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { runAgentToExit, sendRequest, startAgent, type Agent } from '../helpers/agent.ts'
import { makeCertificates, type TestCertificates } from '../helpers/certificates.ts'

let dir: string
let certs: TestCertificates
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'osb-agent-tls-'))
  certs = makeCertificates(dir)
})
after(() => rm(dir, { recursive: true, force: true }))

/** How a refused client certificate shows on the client: an alert, or the server closing (TLS 1.3). */
const HANDSHAKE_REFUSED = (error: NodeJS.ErrnoException) => /CERTIFICATE_REQUIRED|ECONNRESET|ALERT/.test(error.code ?? '')

const port = (agent: Agent) => Number(new URL(agent.url).port)

/** The fingerprint of the certificate the agent presents on a new connection. */
function presentedFingerprint(agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: port(agent), ca: certs.ca }, () => {
      resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '')
      socket.end()
    })
    socket.on('error', reject)
  })
}
const fingerprint = (pem: Buffer) => new X509Certificate(pem).fingerprint256

describe('TLS', () => {
  let agent: Agent
  let live: { certFile: string; keyFile: string }
  before(async () => {
    live = { certFile: join(dir, 'live.pem'), keyFile: join(dir, 'live.key') }
    await copyFile(certs.server.certFile, live.certFile)
    await copyFile(certs.server.keyFile, live.keyFile)
    agent = await startAgent({ env: { tls_cert_file: live.certFile, tls_key_file: live.keyFile }, tls: { ca: certs.ca } })
  })
  after(() => agent.stop())

  it('serves the API over HTTPS with the configured certificate', async () => {
    assert.match(agent.url, /^https:/)
    const res = await agent.request('GET', '/status')
    assert.equal(res.status, 200)
    assert.deepEqual(res.json(), { message: 'Client is running' })
    assert.equal(await presentedFingerprint(agent), fingerprint(certs.server.cert))
    assert.equal((await agent.request('GET', '/status', undefined, { auth: null })).status, 401, 'Basic auth still applies')
  })

  it('answers no plain HTTP on the TLS port', async () => {
    const plain = sendRequest(agent.url.replace('https:', 'http:'), 'GET', '/status', {}, undefined, { fresh: true, timeoutMs: 5000 })
    const outcome = await plain.then(
      (r) => r.status,
      (e: Error) => e.message,
    )
    assert.notEqual(outcome, 200)
  })

  it('does not accept a client that does not trust the certificate', async () => {
    await assert.rejects(
      sendRequest(agent.url, 'GET', '/status', {}, undefined, { tls: { ca: certs.wrongClient.cert } }),
      /self-signed certificate|unable to verify/,
    )
  })

  it('reloads the certificate on SIGHUP, and keeps the old one when the new files are broken', async () => {
    await copyFile(certs.rotated.certFile, live.certFile)
    await copyFile(certs.rotated.keyFile, live.keyFile)
    agent.signal('SIGHUP')
    await agent.waitForOutput(/SIGHUP: TLS certificates reloaded/)
    assert.equal(await presentedFingerprint(agent), fingerprint(certs.rotated.cert))
    assert.equal((await agent.request('GET', '/status')).status, 200)

    await writeFile(live.certFile, 'not a certificate')
    agent.signal('SIGHUP')
    await agent.waitForOutput(/SIGHUP: TLS files not reloaded/)
    assert.equal(await presentedFingerprint(agent), fingerprint(certs.rotated.cert))
    assert.equal((await agent.request('GET', '/status')).status, 200)
    assert.ok(!agent.output().includes(certs.rotated.key.toString().split('\n')[1] as string), 'no key material in the log')
  })
})

describe('client certificates (tls_client_ca_file)', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({
      env: { tls_cert_file: certs.server.certFile, tls_key_file: certs.server.keyFile, tls_client_ca_file: certs.caFile },
      tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key },
    })
  })
  after(() => agent.stop())

  it('serves a client with a certificate the CA signed (and Basic auth still applies)', async () => {
    assert.equal((await agent.request('GET', '/status')).status, 200)
    assert.equal((await agent.request('GET', '/status', undefined, { auth: null })).status, 401)
  })

  it('refuses a client without a certificate in the handshake', async () => {
    await assert.rejects(sendRequest(agent.url, 'GET', '/status', {}, undefined, { tls: { ca: certs.ca } }), HANDSHAKE_REFUSED)
  })

  it('refuses a client certificate from another CA', async () => {
    await assert.rejects(
      sendRequest(agent.url, 'GET', '/status', {}, undefined, {
        tls: { ca: certs.ca, cert: certs.wrongClient.cert, key: certs.wrongClient.key },
      }),
      HANDSHAKE_REFUSED,
    )
  })

  it('is still alive and serving after the refused handshakes', async () => {
    assert.equal((await agent.request('GET', '/status')).status, 200)
  })
})

describe('TLS start-up', () => {
  const base = { client_username: 'u', client_password: 'start-up-password', client_host: '127.0.0.1', client_port: '0' }
  it('refuses to start with unreadable or mismatched TLS files, naming the setting and not the contents', async () => {
    const root = await mkdtemp(join(tmpdir(), 'osb-agent-tls-start-'))
    const dirs = { directory_backup: join(root, 'b'), directory_restore: join(root, 'r') }
    try {
      const missing = await runAgentToExit({ ...base, ...dirs, tls_cert_file: join(dir, 'nope.pem'), tls_key_file: certs.server.keyFile })
      assert.equal(missing.code, 2)
      assert.match(missing.output, /not started: tls_cert_file .*nope\.pem cannot be read: ENOENT/)
      const mismatched = await runAgentToExit({
        ...base,
        ...dirs,
        tls_cert_file: certs.server.certFile,
        tls_key_file: certs.rotated.keyFile,
      })
      assert.equal(mismatched.code, 2)
      assert.match(mismatched.output, /not started: tls_cert_file, tls_key_file or tls_client_ca_file is not usable/)
      assert.ok(!mismatched.output.includes('PRIVATE KEY'))
      const half = await runAgentToExit({ ...base, ...dirs, tls_cert_file: certs.server.certFile })
      assert.notEqual(half.code, 0)
      assert.match(half.output, /tls_cert_file and tls_key_file must be set together/)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
