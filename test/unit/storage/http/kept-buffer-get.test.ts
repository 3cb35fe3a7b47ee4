// The download GET that reads its body into kept buffers, against real HTTP(S) servers and raw
// TCP servers that misbehave: bodies larger than all its batches with a slow consumer (the
// socket must pause and resume without losing or reordering a byte), TLS, answers it leaves to
// node:http (chunked, a proxy configured), cuts, stalls and aborts.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { keptBufferGet, KeptBufferBody } from '../../../../src/storage/http/kept-buffer-get.ts'
import { readText, type HttpResponse } from '../../../../src/storage/http/client.ts'
import { isTransientError } from '../../../../src/storage/http/retry.ts'
import { makeCertificates } from '../../../helpers/certificates.ts'

const MiB = 1024 * 1024
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function listen(server: net.Server, scheme = 'http'): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return new URL(`${scheme}://127.0.0.1:${(server.address() as net.AddressInfo).port}/data?x=1`)
}

async function close(server: net.Server & { closeAllConnections?: () => void }): Promise<void> {
  server.closeAllConnections?.()
  await new Promise((resolve) => server.close(resolve))
}

/** Reads a KeptBufferBody with pipeTo, copying each view (a consumer may wait `delayMs` per batch). */
async function collect(res: HttpResponse, delayMs = 0): Promise<{ data: Buffer; batches: number[] }> {
  assert.ok(res.body instanceof KeptBufferBody, 'the body came through the kept buffers')
  const chunks: Buffer[] = []
  const batches: number[] = []
  await res.body.pipeTo(async (view) => {
    batches.push(view.length)
    const copy = Buffer.from(view)
    if (delayMs > 0) await sleep(delayMs)
    // The view must still hold the same bytes after the wait: nothing read into it meanwhile.
    assert.ok(view.equals(copy), 'a batch was overwritten while its consumer held it')
    chunks.push(copy)
  })
  return { data: Buffer.concat(chunks), batches }
}

/** A raw TCP server that answers every request with `answer(socket)`. */
function rawServer(answer: (socket: net.Socket) => void): net.Server {
  return net.createServer((socket) => {
    socket.on('error', () => undefined)
    socket.once('data', () => answer(socket))
  })
}

describe('keptBufferGet', () => {
  const data = randomBytes(9 * MiB + 12345)
  const seen: http.IncomingHttpHeaders[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.headers)
    if (req.url?.startsWith('/missing'))
      return void res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 14 }).end('no such object')
    if (req.url?.startsWith('/chunked')) {
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.write('first ')
      return void res.end('second')
    }
    res.writeHead(200, { 'content-length': data.length, etag: 'abc', 'x-object-meta-sha256': 'feed' })
    res.end(data)
  })
  let url: URL
  before(async () => {
    url = await listen(server)
  })
  after(() => close(server))

  it('reads a body larger than its batches in order, with a consumer slower than the network', async () => {
    const res = await keptBufferGet({ method: 'GET', url, headers: { 'x-auth-token': 'tok', range: 'bytes=0-' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.etag, 'abc')
    assert.equal(res.headers['x-object-meta-sha256'], 'feed')
    assert.equal((res.body as KeptBufferBody).length, data.length)
    const { data: got, batches } = await collect(res, 15)
    assert.ok(got.equals(data), 'the bytes differ')
    assert.ok(batches.length >= 10, `${batches.length} batches`)
    assert.ok(
      batches.every((n) => n <= MiB),
      'no batch is larger than 1 MiB',
    )
    const headers = seen.at(-1) as http.IncomingHttpHeaders
    assert.equal(headers['x-auth-token'], 'tok')
    assert.equal(headers.range, 'bytes=0-')
    assert.equal(headers.host, url.host)
  })

  it('reads the same bytes as fast as they come, request after request', async () => {
    for (let i = 0; i < 3; i++) {
      const { data: got } = await collect(await keptBufferGet({ method: 'GET', url }))
      assert.ok(got.equals(data))
    }
  })

  it('gives error bodies to readText', async () => {
    const res = await keptBufferGet({ method: 'GET', url: new URL('/missing', url) })
    assert.equal(res.status, 404)
    assert.ok(res.body instanceof KeptBufferBody)
    assert.equal(await readText(res), 'no such object')
  })

  it('closes the connection when an iteration stops early', async () => {
    // Sends 2 of the 8 MiB it announces and waits: only the client can end this connection.
    const body = randomBytes(2 * MiB)
    let closed!: Promise<void>
    const raw = rawServer((socket) => {
      closed = new Promise((resolve) => socket.once('close', () => resolve()))
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${8 * MiB}\r\n\r\n`)
      socket.write(body)
    })
    const rawUrl = await listen(raw)
    try {
      const res = await keptBufferGet({ method: 'GET', url: rawUrl })
      let first: Buffer | undefined
      for await (const chunk of res.body as KeptBufferBody) {
        first = chunk
        break
      }
      assert.ok(first?.equals(body.subarray(0, first.length)))
      await closed // the server sees the connection go (else this test times out)
    } finally {
      await close(raw)
    }
  })

  it('leaves a chunked answer to node:http (the same request again)', async () => {
    const before = seen.length
    const res = await keptBufferGet({ method: 'GET', url: new URL('/chunked', url) })
    assert.ok(res.body instanceof http.IncomingMessage)
    assert.equal(await readText(res), 'first second')
    assert.equal(seen.length - before, 2)
  })

  it('leaves a request to node:http when a proxy is configured for its scheme', async () => {
    process.env.HTTP_PROXY = 'http://127.0.0.1:9' // agents.ts read the environment at load: node:http itself goes direct here
    try {
      const res = await keptBufferGet({ method: 'GET', url })
      assert.ok(res.body instanceof http.IncomingMessage)
      await readText(res, 0)
    } finally {
      delete process.env.HTTP_PROXY
    }
  })

  it('reads a body that ends with the connection (no Content-Length)', async () => {
    const body = randomBytes(3 * MiB + 7)
    const raw = rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n')
      socket.end(body)
    })
    const rawUrl = await listen(raw)
    try {
      const res = await keptBufferGet({ method: 'GET', url: rawUrl })
      assert.equal((res.body as KeptBufferBody).length, undefined)
      assert.ok((await collect(res)).data.equals(body))
    } finally {
      await close(raw)
    }
  })

  it('fails a body cut short as a transient network error, after handing over the whole batches it got', async () => {
    const body = randomBytes(4 * MiB)
    const raw = rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${8 * MiB}\r\n\r\n`)
      socket.write(body, () => socket.resetAndDestroy())
    })
    const rawUrl = await listen(raw)
    try {
      const res = await keptBufferGet({ method: 'GET', url: rawUrl })
      const got: Buffer[] = []
      const error = await (res.body as KeptBufferBody)
        .pipeTo(async (view) => void got.push(Buffer.from(view)))
        .then(
          () => assert.fail('a cut body must fail'),
          (e: unknown) => e,
        )
      assert.ok(isTransientError(error), String(error))
      const prefix = Buffer.concat(got)
      assert.ok(prefix.length <= body.length)
      assert.ok(prefix.equals(body.subarray(0, prefix.length)), 'what was handed over is the start of the body')
    } finally {
      await close(raw)
    }
  })

  it('gives up on a server that stops mid-body, and stops at once when aborted', async () => {
    const raw = rawServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${MiB}\r\n\r\npartial`)
    })
    const rawUrl = await listen(raw)
    try {
      const res = await keptBufferGet({ method: 'GET', url: rawUrl, idleTimeoutMs: 200 })
      await assert.rejects(
        (res.body as KeptBufferBody).pipeTo(async () => {}),
        { name: 'TransportError', code: 'IDLE_TIMEOUT' },
      )
      const abort = new AbortController()
      const aborted = await keptBufferGet({ method: 'GET', url: rawUrl, signal: abort.signal })
      setTimeout(() => abort.abort(), 50)
      await assert.rejects(
        (aborted.body as KeptBufferBody).pipeTo(async () => {}),
        { code: 'ABORTED' },
      )
    } finally {
      await close(raw)
    }
  })

  it('fails an answer that is not HTTP, and one whose two Content-Lengths disagree', async () => {
    const garbage = rawServer((socket) => socket.end('SSH-2.0-OpenSSH\r\n\r\n'))
    const twoLengths = rawServer((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!'))
    try {
      await assert.rejects(keptBufferGet({ method: 'GET', url: await listen(garbage) }), {
        code: 'EPROTO',
        message: /not an HTTP\/1\.1 answer/,
      })
      await assert.rejects(keptBufferGet({ method: 'GET', url: await listen(twoLengths) }), {
        code: 'EPROTO',
        message: /two different content-length/,
      })
    } finally {
      await close(garbage)
      await close(twoLengths)
    }
  })

  it('passes the consumer’s failure on and closes the connection', async () => {
    const res = await keptBufferGet({ method: 'GET', url })
    await assert.rejects(
      (res.body as KeptBufferBody).pipeTo(async () => {
        throw Object.assign(new Error('disk full'), { code: 'ENOSPC' })
      }),
      { code: 'ENOSPC' },
    )
  })
})

describe('keptBufferGet over TLS', () => {
  let dir: string
  let server: https.Server
  let url: URL
  const data = randomBytes(5 * MiB + 3)
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-kept-get-'))
    const certs = makeCertificates(dir)
    // What applyTrust (src/tls.ts) does with a ca_file: the default CA list, which tls.connect uses.
    tls.setDefaultCACertificates([...tls.getCACertificates('bundled'), certs.ca.toString()])
    server = https.createServer({ cert: certs.server.cert, key: certs.server.key }, (_req, res) => {
      res.writeHead(200, { 'content-length': data.length })
      res.end(data)
    })
    url = await listen(server, 'https')
  })
  after(async () => {
    await close(server)
    await rm(dir, { recursive: true, force: true })
  })

  it('reads the body through TLS, with a slow consumer, byte-exact', async () => {
    const res = await keptBufferGet({ method: 'GET', url })
    assert.equal(res.status, 200)
    assert.ok((await collect(res, 10)).data.equals(data))
  })

  it('refuses a server certificate the default CAs do not vouch for', async () => {
    tls.setDefaultCACertificates(tls.getCACertificates('bundled'))
    await assert.rejects(keptBufferGet({ method: 'GET', url }), (error: NodeJS.ErrnoException) =>
      /CERT|SIGNATURE|SELF_SIGNED|UNABLE/.test(error.code ?? ''),
    )
  })
})
