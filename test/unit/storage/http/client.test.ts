// The HTTP primitive: 100-continue (no body for a request refused up front), servers that ignore
// Expect, and the timeouts that keep a job from hanging.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { readText, send, TransportError, type StreamedBody } from '../../../../src/storage/http/client.ts'
import { closedPort } from '../../../helpers/swift.ts'

function body(data: Buffer): StreamedBody & { opened: number } {
  const b = {
    length: data.length,
    opened: 0,
    send: (write: (chunk: Buffer) => Promise<void>) => {
      b.opened++
      return write(data)
    },
  }
  return b
}

async function listen(server: net.Server): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`)
}

describe('send', () => {
  const server = http.createServer()
  let url: URL
  let received: number[] = []
  before(async () => {
    server.on('checkContinue', async (req, res) => {
      if (req.headers['x-auth-token'] !== 'good') return void res.writeHead(401).end('Unauthorized')
      res.writeContinue()
      let size = 0
      for await (const chunk of req) size += (chunk as Buffer).length
      received.push(size)
      res.writeHead(201).end()
    })
    url = await listen(server)
  })
  after(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })

  it('sends a streamed body only after 100 Continue', async () => {
    received = []
    const data = Buffer.alloc(3 * 1024 * 1024, 7)
    const ok = body(data)
    const res = await send({ method: 'PUT', url, headers: { 'x-auth-token': 'good' }, body: ok })
    await readText(res)
    assert.equal(res.status, 201)
    assert.deepEqual(received, [data.length])
    assert.equal(ok.opened, 1)
  })

  it('never opens the body of a request refused before it (an expired token)', async () => {
    received = []
    const refused = body(Buffer.alloc(1024 * 1024))
    const res = await send({ method: 'PUT', url, headers: { 'x-auth-token': 'expired' }, body: refused })
    assert.equal(res.status, 401)
    assert.equal(await readText(res), 'Unauthorized')
    assert.equal(refused.opened, 0)
    assert.deepEqual(received, [])
  })

  it('sends the body anyway to a server that ignores Expect', async () => {
    // a raw server that never says 100 Continue and answers once the whole body is there
    const raw = net.createServer((socket) => {
      let seen = Buffer.alloc(0)
      socket.on('data', (chunk) => {
        seen = Buffer.concat([seen, chunk])
        const end = seen.indexOf('\r\n\r\n')
        if (end >= 0 && seen.length - end - 4 >= 5) socket.end('HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      })
    })
    const rawUrl = await listen(raw)
    try {
      const started = Date.now()
      const res = await send({ method: 'PUT', url: rawUrl, body: body(Buffer.from('hello')) })
      await readText(res)
      assert.equal(res.status, 201)
      assert.ok(Date.now() - started >= 900, 'waited for 100 Continue first')
    } finally {
      await new Promise((resolve) => raw.close(resolve))
    }
  })

  it('fails with ECONNREFUSED on a closed port', async () => {
    const port = await closedPort()
    await assert.rejects(send({ method: 'GET', url: new URL(`http://127.0.0.1:${port}/`) }), (error: Error) => {
      assert.ok(error instanceof TransportError)
      assert.equal(error.code, 'ECONNREFUSED')
      return true
    })
  })

  it('gives up on a server that accepts and never answers, and on one that stops mid-body', async () => {
    const silent = net.createServer((socket) => socket.resume()) // reads (so it sees the client leave) and never answers
    const silentUrl = await listen(silent)
    const stalling = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': 1000 })
      res.write('partial')
    })
    const stallingUrl = await listen(stalling)
    try {
      await assert.rejects(send({ method: 'GET', url: silentUrl, idleTimeoutMs: 200 }), { name: 'TransportError', code: 'IDLE_TIMEOUT' })
      const res = await send({ method: 'GET', url: stallingUrl, idleTimeoutMs: 200 })
      assert.equal(res.status, 200)
      await assert.rejects(
        (async () => {
          for await (const _ of res.body);
        })(),
        { code: 'IDLE_TIMEOUT' },
      )
    } finally {
      stalling.closeAllConnections()
      await new Promise((resolve) => silent.close(resolve))
      await new Promise((resolve) => stalling.close(resolve))
    }
  })

  it('stops at once when aborted', async () => {
    const silent = net.createServer((socket) => socket.resume()) // reads (so it sees the client leave) and never answers
    const silentUrl = await listen(silent)
    try {
      const abort = new AbortController()
      setTimeout(() => abort.abort(), 50)
      await assert.rejects(send({ method: 'GET', url: silentUrl, signal: abort.signal }), { code: 'ABORTED' })
    } finally {
      await new Promise((resolve) => silent.close(resolve))
    }
  })
})
