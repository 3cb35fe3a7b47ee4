// Server limits against a real agent: slow clients are cut off, a burst of connections beyond
// the cap gets 429 answers (not resets), and the agent keeps serving.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { HEADERS_TIMEOUT_MS, MAX_CONNECTIONS } from '../../src/http/limits.ts'

/** Opens a raw connection; resolves once connected. */
function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Writes a raw request and reads until the server closes or the first response is complete. */
function exchange(socket: net.Socket, request: string): Promise<{ head: string; body: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let data = ''
    const done = (closed: boolean) => {
      const [head = '', body = ''] = data.split('\r\n\r\n')
      resolve({ head, body, closed })
    }
    socket.on('data', (chunk) => {
      data += chunk.toString()
      const length = /content-length: (\d+)/i.exec(data)?.[1]
      const split = data.indexOf('\r\n\r\n')
      if (length !== undefined && split >= 0 && data.length - split - 4 >= Number(length)) done(false)
    })
    socket.once('close', () => done(true))
    socket.once('error', reject)
    socket.write(request)
  })
}

describe('server limits', () => {
  let agent: Agent
  let port: number
  let auth: string
  before(async () => {
    agent = await startAgent()
    port = Number(new URL(agent.url).port)
    auth = `Basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64')}`
  })
  after(() => agent.stop())

  it('closes a connection whose headers trickle in (slowloris) after the header timeout, with a JSON 408', async () => {
    const started = Date.now()
    const slow = await connect(port)
    const silent = await connect(port)
    const trickle = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), 500)
    try {
      const [reply, silence] = await Promise.all([
        exchange(slow, 'GET /status HTTP/1.1\r\nHost: agent\r\n'),
        new Promise<number>((resolve) => silent.once('close', () => resolve(Date.now() - started))),
      ])
      const elapsed = Date.now() - started
      assert.match(reply.head, /^HTTP\/1\.1 408/)
      assert.ok(elapsed >= HEADERS_TIMEOUT_MS - 500 && elapsed < HEADERS_TIMEOUT_MS + 3000, `closed after ${elapsed} ms`)
      assert.ok(silence < HEADERS_TIMEOUT_MS + 3000, `a silent connection closed after ${silence} ms`)
    } finally {
      clearInterval(trickle)
      slow.destroy()
      silent.destroy()
    }
    assert.equal((await agent.request('GET', '/status')).status, 200)
  })

  it('answers CONNECT with a JSON 405 instead of dropping the connection', async () => {
    const socket = await connect(port)
    const reply = await exchange(socket, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n')
    socket.destroy()
    assert.match(reply.head, /^HTTP\/1\.1 405/)
    assert.ok(JSON.parse(reply.body).message)
  })

  it(`answers 429 with Connection: close on connections beyond ${MAX_CONNECTIONS}, not a reset, and recovers`, async () => {
    const sockets: net.Socket[] = []
    try {
      for (let i = 0; i < MAX_CONNECTIONS + 50; i++) sockets.push(await connect(port))
      const request = `GET /status HTTP/1.1\r\nHost: agent\r\nAuthorization: ${auth}\r\n\r\n`
      const beyond = await Promise.all(sockets.slice(MAX_CONNECTIONS).map((s) => exchange(s, request)))
      for (const reply of beyond) {
        assert.match(reply.head, /^HTTP\/1\.1 429/)
        assert.match(reply.head, /connection: close/i)
        assert.match(JSON.parse(reply.body).message, /too many open connections/)
      }
      const within = await exchange(sockets[0] as net.Socket, request)
      assert.match(within.head, /^HTTP\/1\.1 200/)
    } finally {
      for (const s of sockets) s.destroy()
    }
    await new Promise((r) => setTimeout(r, 200))
    const burst = await Promise.all(Array.from({ length: 100 }, () => agent.request('GET', '/status', undefined, { fresh: true })))
    assert.ok(burst.every((r) => r.status === 200))
  })
})
