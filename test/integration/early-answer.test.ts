// An answer given while the client is still sending its body (413 for a body over 1 MiB, 401
// before the body is read) reaches the client: Node 24's own fetch gets the answer, not EPIPE.
// The agent keeps reading and discarding up to DRAIN_MAX_BYTES or DRAIN_MAX_MS, then closes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { DRAIN_MAX_BYTES, DRAIN_MAX_MS } from '../../src/http/limits.ts'

const TEN_MB = 10 * 1024 * 1024

/** A body the client streams in 64 KiB pieces: fetch sends it chunked (no Content-Length). */
function chunkedBody(size: number): ReadableStream<Uint8Array> {
  let sent = 0
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close()
      controller.enqueue(new Uint8Array(64 * 1024).fill(0x61))
      sent += 64 * 1024
    },
  })
}

interface RawOutcome {
  head: string
  /** Body bytes the client got to write before the agent closed the connection. */
  written: number
  closedAfterMs: number
}

/**
 * Sends a request declaring `declared` body bytes over a raw socket, writing `pieceBytes` every
 * `everyMs` (0: as fast as the socket takes them) until the agent closes the connection.
 */
function rawUpload(
  port: number,
  head: string,
  pieceBytes: number,
  everyMs: number,
  giveUpMs: number,
  from = '127.0.0.1',
): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    // half-open: the client goes on sending after the agent's FIN, as a client that does not read would
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true })
    let answer = ''
    let written = 0
    let done = false
    const piece = Buffer.alloc(pieceBytes, 0x61)
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(giveUp)
      resolve({ head: answer.split('\r\n\r\n')[0] ?? '', written, closedAfterMs: Date.now() - started })
    }
    const giveUp = setTimeout(() => {
      done = true
      socket.destroy()
      reject(new Error(`the agent kept the connection open for ${giveUpMs} ms (${written} bytes written)`))
    }, giveUpMs)
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')))
    socket.on('close', finish)
    socket.on('error', () => finish()) // the reset at the byte limit
    // A client sends no more than the Content-Length it declared: bytes past it would be parsed as
    // a next request, and the agent's answer to that garbage could reset the connection before
    // this client read the answer under test.
    const declared = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? Infinity)
    const send = () => {
      while (!done && !socket.destroyed) {
        if (written >= declared) return void socket.end()
        written += pieceBytes
        const more = socket.write(written > declared ? piece.subarray(0, pieceBytes - (written - declared)) : piece)
        if (everyMs > 0) return void setTimeout(send, everyMs)
        if (!more) return void socket.once('drain', send)
      }
    }
    socket.once('connect', () => {
      socket.write(head)
      send()
    })
  })
}

describe('early answers reach a client that is still sending', () => {
  let agent: Agent
  let port: number
  let auth: string
  before(async () => {
    // 127.0.0.1 (fetch) is never locked out; 127.0.0.5 is, for the 429 case
    agent = await startAgent({ env: { auth_max_failures: '3', auth_throttle_exempt: '127.0.0.1' } })
    port = Number(new URL(agent.url).port)
    auth = `Basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64')}`
  })
  after(() => agent.stop())

  const cases: { name: string; headers: () => Record<string, string>; body: () => RequestInit['body']; status: number; message: RegExp }[] =
    [
      {
        name: '413 for 10 MB with Content-Length',
        headers: () => ({ authorization: auth, 'content-type': 'application/json' }),
        body: () => Buffer.alloc(TEN_MB, 0x61),
        status: 413,
        message: /larger than 1048576 bytes/,
      },
      {
        name: '413 for 10 MB chunked',
        headers: () => ({ authorization: auth }),
        body: () => chunkedBody(TEN_MB),
        status: 413,
        message: /larger than 1048576 bytes/,
      },
      {
        name: '401 for an unauthenticated 10 MB POST',
        headers: () => ({}),
        body: () => Buffer.alloc(TEN_MB, 0x61),
        status: 401,
        message: /Unauthorised/,
      },
      {
        name: '401 for an unauthenticated 10 MB chunked POST',
        headers: () => ({}),
        body: () => chunkedBody(TEN_MB),
        status: 401,
        message: /Unauthorised/,
      },
    ]
  for (const c of cases) {
    it(`Node's fetch gets the ${c.name}, as JSON, every time`, async () => {
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${agent.url}/backup`, {
          method: 'POST',
          headers: c.headers(),
          body: c.body(),
          duplex: 'half',
        } as RequestInit)
        assert.equal(res.status, c.status)
        assert.equal(res.headers.get('connection'), 'close')
        assert.match(res.headers.get('content-type') ?? '', /application\/json/)
        assert.match(((await res.json()) as { message: string }).message, c.message)
      }
      assert.equal((await agent.request('GET', '/status')).status, 200)
    })
  }

  it(`closes the connection of a client that sends more than ${DRAIN_MAX_BYTES} bytes after the answer`, async () => {
    const head = `POST /backup HTTP/1.1\r\nHost: agent\r\nAuthorization: ${auth}\r\nContent-Length: ${4 * DRAIN_MAX_BYTES}\r\n\r\n`
    const outcome = await rawUpload(port, head, 64 * 1024, 0, 30_000)
    assert.match(outcome.head, /^HTTP\/1\.1 413/)
    // what the agent read, plus what socket buffers held when it closed
    assert.ok(outcome.written > DRAIN_MAX_BYTES && outcome.written < 2 * DRAIN_MAX_BYTES, `${outcome.written} bytes were taken`)
    assert.equal((await agent.request('GET', '/status')).status, 200)
  })

  it(`closes the connection of a client still trickling its body ${DRAIN_MAX_MS} ms after the answer`, async () => {
    const head = `POST /backup HTTP/1.1\r\nHost: agent\r\nContent-Length: ${TEN_MB}\r\n\r\n`
    const outcome = await rawUpload(port, head, 1024, 100, 20_000)
    assert.match(outcome.head, /^HTTP\/1\.1 401/)
    // the idle (10 s) and request (30 s) timeouts would close it only later
    assert.ok(
      outcome.closedAfterMs >= DRAIN_MAX_MS - 500 && outcome.closedAfterMs < DRAIN_MAX_MS + 3000,
      `closed after ${outcome.closedAfterMs} ms`,
    )
  })

  it('a locked-out address gets its 429 while sending a 10 MB body', async () => {
    const head = (authorization: string) =>
      `POST /backup HTTP/1.1\r\nHost: agent\r\nAuthorization: ${authorization}\r\nContent-Length: ${TEN_MB}\r\n\r\n`
    const wrong = `Basic ${Buffer.from('manager:wrong-password').toString('base64')}`
    for (let i = 0; i < 3; i++)
      assert.match((await rawUpload(port, head(wrong), 256 * 1024, 0, 20_000, '127.0.0.5')).head, /^HTTP\/1\.1 401/)
    const locked = await rawUpload(port, head(auth), 256 * 1024, 0, 20_000, '127.0.0.5')
    assert.match(locked.head, /^HTTP\/1\.1 429/, JSON.stringify({ written: locked.written, ms: locked.closedAfterMs }))
    assert.match(locked.head, /connection: close/i)
  })

  it('keeps polls on a kept-alive connection (no early answer there)', async () => {
    const first = await fetch(`${agent.url}/status`, { headers: { authorization: auth } })
    assert.equal(first.status, 200)
    assert.notEqual(first.headers.get('connection'), 'close')
  })
})
