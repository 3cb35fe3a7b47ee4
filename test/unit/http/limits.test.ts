// Node's look for requests past their timeouts runs only while a connection is open: an idle
// agent is not woken every TIMEOUT_CHECK_INTERVAL_MS (its behaviour against a slow client is in
// test/integration/limits.test.ts).
import { it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeCertificates } from '../../helpers/certificates.ts'
import { once } from 'node:events'
import { limitConnections, PAUSED_MS, TIMEOUT_CHECK_INTERVAL_MS } from '../../../src/http/limits.ts'

/** The delay of Node's checking timer (read through Node's own symbol: tests only). */
function checkingEveryMs(server: http.Server | https.Server): number {
  const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connectionsCheckingInterval')
  assert.ok(key, 'Node keeps its checking timer under this symbol')
  return ((server as unknown as Record<symbol, { _idleTimeout: number }>)[key] as { _idleTimeout: number })._idleTimeout
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10))
}

/** Listens on a free loopback port; Node's check is paused then, as nothing is connected yet. */
async function listening(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  assert.equal(checkingEveryMs(server), PAUSED_MS, 'no look while nothing is connected')
  return (server.address() as net.AddressInfo).port
}

it('looks for timed-out requests only while connections are open', async () => {
  const server = http.createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS }, (_req, res) => res.end('ok'))
  const connections = limitConnections(server, 'connection')
  const port = await listening(server)
  try {
    for (let round = 0; round < 2; round++) {
      const sockets = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')]
      await until(() => connections.open() === 2)
      assert.equal(checkingEveryMs(server), TIMEOUT_CHECK_INTERVAL_MS, 'looks while connections are open')
      sockets[0]?.destroy()
      await until(() => connections.open() === 1)
      assert.equal(checkingEveryMs(server), TIMEOUT_CHECK_INTERVAL_MS, 'still looks while one is open')
      sockets[1]?.destroy()
      await until(() => connections.open() === 0)
      assert.equal(checkingEveryMs(server), PAUSED_MS, 'stops looking once the last one closed')
    }
  } finally {
    server.close()
  }
})

it('over TLS too: the look runs while a handshaken connection is open (the agent counts secureConnection)', async () => {
  const certs = makeCertificates(mkdtempSync(join(tmpdir(), 'limits-tls-')))
  const server = https.createServer(
    { key: certs.server.key, cert: certs.server.cert, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS },
    (_req, res) => res.end('ok'),
  )
  const connections = limitConnections(server, 'secureConnection')
  const port = await listening(server)
  try {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: certs.ca })
    await once(socket, 'secureConnect')
    await until(() => connections.open() === 1)
    assert.equal(checkingEveryMs(server), TIMEOUT_CHECK_INTERVAL_MS, 'looks while the TLS connection is open')
    socket.destroy()
    await until(() => connections.open() === 0)
    assert.equal(checkingEveryMs(server), PAUSED_MS, 'stops looking once it closed')
  } finally {
    server.close()
  }
})
