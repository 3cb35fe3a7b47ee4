// A storage server (or a proxy before it) whose error answers echo the request it got: the
// token the agent sent (X-Auth-Token) must not reach the polling body, the job listing, the
// agent's log (at trace level) or the job store. Real Swift never echoes; a test server does.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

const TOKEN = `tok-${'Echoed0123456789'.repeat(2)}`

/** A v1 auth endpoint that hands out TOKEN, and an account that answers 500 with the request's headers. */
function echoingSwift(): Promise<{ port: number; close: () => void }> {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const port = (server.address() as { port: number }).port
      if (req.url?.startsWith('/auth/v1.0')) {
        res.writeHead(200, { 'x-auth-token': TOKEN, 'x-storage-url': `http://127.0.0.1:${port}/v1/AUTH_echo` })
        return res.end()
      }
      res.writeHead(req.method === 'HEAD' ? 200 : 500, { 'content-type': 'text/plain' })
      // the token raw at the end of a long answer (the message keeps 300 characters) and JSON-quoted
      res.end(`echo ${JSON.stringify(req.headers)} ${'.'.repeat(200)} ${req.headers['x-auth-token']}`)
    })
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() })),
  )
}

function storeFiles(root: string): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name))
      else if (/^jobs\.sqlite/.test(entry.name)) out.push(join(dir, entry.name))
    }
  }
  walk(root)
  return out
}

describe('a storage server that echoes the token', () => {
  let agent: Agent
  let swift: { port: number; close: () => void }
  before(async () => {
    swift = await echoingSwift()
    agent = await startAgent({ env: { log_level: 'trace', storage_retries: '0' } })
  })
  after(async () => {
    await agent.stop()
    swift.close()
  })

  it('keeps it out of the polling body, the listing, the log and the store', async () => {
    const destination = (extra: Record<string, unknown> = {}) => ({
      type: 'SWIFT',
      skipStorage: false,
      filenamePrefix: '',
      container_name: 'c',
      authUrl: `http://127.0.0.1:${swift.port}/auth/v1.0`,
      domain: null,
      project_name: null,
      username: 'u',
      password: 'echo-swift-pass-1',
      ...extra,
    })
    for (const [kind, method, body] of [
      ['backup', 'POST', managerBackupBody(managerId(), destination())],
      ['restore', 'PUT', managerRestoreBody(managerId(), destination({ filename: 'x.sql' }))],
    ] as const) {
      const id = body.id as string
      assert.equal((await agent.request(method, `/${kind}`, body)).status, 201)
      const job = await agent.waitFor(kind, id, 60_000)
      assert.equal(job.status, 'FAILED')
      // the answer is still reported, without the token
      assert.match(job.error_message, /answered 500 echo/)
      assert.ok(!JSON.stringify(job).includes(TOKEN), job.error_message)
      assert.ok(!JSON.stringify(job).includes(TOKEN.slice(-12)), job.error_message)
      const listing = await agent.request('GET', `/${kind}`)
      assert.ok(!listing.text.includes(TOKEN.slice(-12)))
    }
    await agent.waitForOutput(/job finished[\s\S]*job finished/)
    agent.assertNoSecrets([TOKEN, TOKEN.slice(-12)])
    const files = storeFiles(agent.root)
    assert.ok(files.length > 0, 'no jobs.sqlite under the agent root')
    for (const file of files) assert.ok(!readFileSync(file).includes(TOKEN.slice(-12)), file)
  })
})
