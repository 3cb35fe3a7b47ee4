// ApiServer.listen: an IP address is bound without a DNS lookup, a host name is looked up, and an
// address in use fails the start either way.
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import dns from 'node:dns'
import { createServer, type AddressInfo } from 'node:net'
import type { ApiServer } from '../../../src/http/server.ts'
import { inProcessServers } from '../../helpers/api-server.ts'

const servers = inProcessServers()
const apiServer = servers.make

/** Calls of dns.lookup while `run` runs (net's listen looks a host up through it). */
async function lookups(run: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = []
  const original = dns.lookup
  dns.lookup = ((host: string, ...rest: unknown[]) => {
    seen.push(host)
    return (original as (...a: unknown[]) => unknown)(host, ...rest)
  }) as typeof dns.lookup
  try {
    await run()
  } finally {
    dns.lookup = original
  }
  return seen
}

async function answers(api: ApiServer, host: string): Promise<number> {
  const { port } = api.server.address() as AddressInfo
  return (await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${port}/healthz`)).status
}

describe('ApiServer.listen', () => {
  after(() => servers.close())

  for (const host of ['127.0.0.1', '::1']) {
    it(`binds the IP address ${host} without a DNS lookup`, async () => {
      const api = apiServer()
      try {
        assert.deepEqual(await lookups(() => api.listen(host, 0)), [])
        assert.equal((api.server.address() as AddressInfo).address, host)
        assert.equal(await answers(api, host), 200)
      } finally {
        await api.close()
      }
    })
  }

  it('looks a host name up', async () => {
    const api = apiServer()
    try {
      assert.deepEqual(await lookups(() => api.listen('localhost', 0)), ['localhost'])
      const { address } = api.server.address() as AddressInfo
      assert.equal(await answers(api, address), 200)
    } finally {
      await api.close()
    }
  })

  for (const host of ['127.0.0.1', 'localhost']) {
    it(`fails on an address in use (${host}) and listens on nothing`, async () => {
      const taken = createServer()
      const { address } = await dns.promises.lookup(host) // where listen would bind
      await new Promise<void>((resolve) => taken.listen(0, address, resolve))
      const { port } = taken.address() as AddressInfo
      const api = apiServer()
      try {
        await assert.rejects(api.listen(host, port), { code: 'EADDRINUSE' })
        assert.equal(api.server.listening, false)
      } finally {
        taken.close()
      }
    })
  }
})
