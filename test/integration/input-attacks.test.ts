// Variants of the input classes of issue 14 (items 1, 2, 8) against a real agent: what a request
// puts in a 4xx body or a log, the Swift fields each auth URL needs with skipStorage, prefixes
// LOCAL stores under, a request without Host, and early answers to other clients than Node's
// fetch (python's http.client, Expect: 100-continue, HTTPS).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { makeCertificates } from '../helpers/certificates.ts'

const run = promisify(execFile)
const TEN_MB = 10 * 1024 * 1024

/** Sends raw bytes and reads until the agent closes (or `waitMs`). */
function rawExchange(port: number, bytes: string, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let answer = ''
    const done = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    const timer = setTimeout(done, waitMs)
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1')
      if (/\r\n\r\n/.test(answer) && /content-length: (\d+)/i.test(answer)) {
        const length = Number(/content-length: (\d+)/i.exec(answer)?.[1])
        if (Buffer.byteLength(answer.split('\r\n\r\n').slice(1).join('\r\n\r\n'), 'latin1') >= length) done()
      }
    })
    socket.on('close', done)
    socket.on('error', done)
    socket.write(bytes)
  })
}

describe('what a refused request leaves behind', () => {
  let agent: Agent
  let port: number
  let auth: string
  before(async () => {
    agent = await startAgent({ env: { log_level: 'debug' } })
    port = Number(new URL(agent.url).port)
    auth = `Basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64')}`
  })
  after(() => agent.stop())

  it('a JSON syntax error next to a password does not quote it in the 400 or the log', async () => {
    const password = 'pw-beside-a-typo-7f3a9c'
    const bodies = [
      `{"id":"t1","backup":{"password":"${password}","port":tru}}`,
      `{"id":"t1","backup":{"password":"${password}"}}}`,
      `{"id":"t1","backup":{"password":${password}}}`,
      `{"id":"t1","destination":{"authSecret":"${password}",}}`,
      `["${password}",]`,
    ]
    for (const raw of bodies) {
      for (const [method, path] of [
        ['POST', '/backup'],
        ['PUT', '/restore'],
        ['DELETE', '/backup'],
      ] as const) {
        const res = await agent.request(method, path, undefined, { raw, headers: { 'content-type': 'application/json' } })
        assert.equal(res.status, 400, raw)
        assert.match(res.headers.get('content-type') ?? '', /application\/json/)
        for (let i = 0; i + 6 <= password.length; i++)
          assert.ok(!res.text.includes(password.slice(i, i + 6)), `${method} ${path} echoes the password: ${res.text}`)
      }
    }
    assert.equal((await agent.request('GET', '/backup/t1')).status, 404, 'no job registered')
    agent.assertNoSecrets([password])
  })

  it('an auth URL with credentials is a 400 that echoes neither, and no job', async () => {
    const secret = 'url-embedded-secret-91c2'
    for (const authUrl of [`http://admin:${secret}@127.0.0.1:9/v3`, `http://${secret}@127.0.0.1:9/auth/v1.0`]) {
      const res = await agent.request('POST', '/backup', {
        id: 'swift-creds',
        destination: { type: 'SWIFT', authUrl, username: 'u', password: 'p', container_name: 'c', domain: 'd', project_name: 'p' },
        backup: { host: 'h', username: 'u', password: 'p', database: 'd' },
      })
      assert.equal(res.status, 400)
      assert.match(res.json().error_message, /destination\.authUrl must not contain a user or password/)
      assert.ok(!res.text.includes(secret))
    }
    assert.equal((await agent.request('GET', '/backup/swift-creds')).status, 404)
    agent.assertNoSecrets([secret])
  })

  it("skipStorage Swift: each auth version's fields are required at the trigger, and no script runs", async () => {
    const cases: [suffix: string, missing: Record<string, unknown>, field: string][] = [
      ['/v3//', { domain: 'd' }, 'project_name'],
      ['/v3/', { project_name: 'p' }, 'domain'],
      ['/v2.0', { domain: 'd' }, 'project_name'],
      ['/identity/v2/', {}, 'project_name'],
    ]
    for (const [i, [suffix, fields, field]] of cases.entries()) {
      const id = `swift-skip-${i}`
      const res = await agent.request('POST', '/backup', {
        id,
        destination: {
          type: 'SWIFT',
          skipStorage: true,
          authUrl: `http://127.0.0.1:9${suffix}`,
          username: 'u',
          password: 'p',
          container_name: 'c',
          ...fields,
        },
        backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: { job: id } },
      })
      assert.equal(res.status, 400, `${suffix}: ${res.text}`)
      assert.match(res.json().error_message, new RegExp(`destination\\.${field} is required`))
      assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
      assert.deepEqual(await agent.stagesRun(id), [])
    }
  })

  it("a request without Host (HTTP/1.1) gets the API's JSON answer, not a bare 400", async () => {
    const answer = await rawExchange(port, `GET /status HTTP/1.1\r\nAuthorization: ${auth}\r\nConnection: close\r\n\r\n`)
    assert.match(answer, /^HTTP\/1\.1 200/)
    assert.match(answer, /Client is running/)
    const trigger = await rawExchange(
      port,
      `POST /backup HTTP/1.1\r\nAuthorization: ${auth}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    )
    assert.match(trigger, /^HTTP\/1\.1 400/)
    assert.match(trigger, /content-type: application\/json/i)
    assert.match(trigger, /"state":"Body Deserialization"/)
  })
})

describe('LOCAL: a prefix the agent stores under', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent()
  })
  after(() => agent.stop())

  const trigger = (id: string, filenamePrefix: string) =>
    agent.request('POST', '/backup', {
      id,
      destination: { type: 'LOCAL', filenamePrefix },
      backup: { host: 'h', username: 'u', password: 'p', database: 'd' },
    })

  it('512 bytes in folders of 255 (multibyte) is stored; one byte more, or a 256-byte folder, is a 400 and no job', async () => {
    // 255 + 1 + 255 + 1 = 512 bytes: two folders at NAME_MAX, 3-byte characters
    const folder = `${'€'.repeat(85)}`
    const prefix = `${folder}/${folder}/`
    assert.equal(Buffer.byteLength(prefix), 512)
    assert.equal((await trigger('prefix-ok', prefix)).status, 201)
    const job = await agent.waitFor('backup', 'prefix-ok')
    assert.equal(job.status, 'SUCCEEDED', job.error_message)
    assert.deepEqual(
      (await readdir(join(agent.root, 'var/storage', folder, folder))).filter((n) => !n.startsWith('.')),
      [job.filename],
    )

    for (const [id, bad, message] of [
      ['prefix-long', `${folder}/${folder}/a/`, /filenamePrefix is 514 bytes/],
      ['prefix-folder', `${folder}x/`, /folder name of 256 bytes/],
      ['prefix-huge', `${'a'.repeat(32 * 1024 - 1)}/`, /filenamePrefix is 32768 bytes/],
    ] as const) {
      const res = await trigger(id, bad)
      assert.equal(res.status, 400, id)
      assert.match(res.json().error_message, message)
      assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
    }
  })
})

describe('early answers reach other clients that are still sending', () => {
  let plain: Agent
  let secure: Agent
  let caFile: string
  before(async () => {
    const certs = makeCertificates(mkdtempSync(join(tmpdir(), 'osb-early-tls-')))
    caFile = certs.caFile
    plain = await startAgent({ env: { auth_throttle_exempt: '127.0.0.1' } })
    secure = await startAgent({
      env: { tls_cert_file: certs.server.certFile, tls_key_file: certs.server.keyFile, auth_throttle_exempt: '127.0.0.1' },
      tls: { ca: certs.ca },
    })
  })
  after(async () => {
    await plain.stop()
    await secure.stop()
  })

  /** python3's http.client sends the whole body before it reads the answer. */
  const python = `
import http.client, ssl, sys, json, base64
url, user, password, ca, mode = sys.argv[1:6]
scheme, rest = url.split('://')
host, port = rest.split(':')
conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=ssl.create_default_context(cafile=ca)) if scheme == 'https' else http.client.HTTPConnection(host, int(port), timeout=30)
headers = {'Authorization': 'Basic ' + base64.b64encode((user + ':' + password).encode()).decode()}
if mode == 'expect': headers['Expect'] = '100-continue'
big = b'a' * ${TEN_MB}
def pieces():
    for i in range(0, len(big), 65536): yield big[i:i + 65536]
if mode == 'chunked': conn.request('POST', '/backup', body=pieces(), headers=headers, encode_chunked=True)
else: conn.request('POST', '/backup', body=big, headers=headers)
res = conn.getresponse()
print(json.dumps({'status': res.status, 'type': res.getheader('content-type'), 'connection': res.getheader('connection'), 'body': res.read().decode()}))
`

  for (const tls of [false, true]) {
    for (const mode of ['length', 'chunked', 'expect']) {
      for (const [what, status, message] of [
        ['right', 413, /larger than 1048576 bytes/],
        ['wrong', 401, /Unauthorised/],
      ] as const) {
        it(`python http.client over ${tls ? 'HTTPS' : 'HTTP'}, ${mode}, ${what} credentials: the ${status} JSON`, async () => {
          const agent = tls ? secure : plain
          const password = what === 'right' ? agent.password : 'not-the-password'
          const { stdout } = await run('python3', ['-c', python, agent.url, agent.username, password, caFile, mode], { timeout: 60_000 })
          const answer = JSON.parse(stdout)
          assert.equal(answer.status, status)
          assert.match(answer.type, /application\/json/)
          assert.equal(answer.connection, 'close')
          assert.match(JSON.parse(answer.body).message, message)
        })
      }
    }
  }

  it("Node's fetch over HTTPS gets the 413 and the 401, with a length and chunked", async () => {
    // In a process of its own: NODE_EXTRA_CA_CERTS is how fetch trusts the test CA.
    const script = `
      const [url, good] = process.argv.slice(1)
      const chunked = () => { let sent = 0; return new ReadableStream({ pull(c) { if (sent >= ${TEN_MB}) return c.close(); c.enqueue(new Uint8Array(65536).fill(97)); sent += 65536 } }) }
      const out = []
      for (const authorization of [good, 'Basic bm86bm8=']) {
        for (const body of [() => Buffer.alloc(${TEN_MB}, 97), chunked]) {
          try {
            const res = await fetch(url + '/backup', { method: 'POST', headers: { authorization }, body: body(), duplex: 'half' })
            out.push({ status: res.status, connection: res.headers.get('connection'), body: await res.json() })
          } catch (error) { out.push({ error: String(error.cause?.code ?? error.message) }) }
        }
      }
      console.log(JSON.stringify(out))`
    const good = `Basic ${Buffer.from(`${secure.username}:${secure.password}`).toString('base64')}`
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, secure.url, good], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
      timeout: 60_000,
    })
    const answers = JSON.parse(stdout) as { status?: number; connection?: string; body?: { message?: string }; error?: string }[]
    assert.deepEqual(
      answers.map((a) => a.error ?? a.status),
      [413, 413, 401, 401],
    )
    for (const a of answers) {
      assert.equal(a.connection, 'close')
      assert.equal(typeof a.body?.message, 'string')
    }
  })
})
