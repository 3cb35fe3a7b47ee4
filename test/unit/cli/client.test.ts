// What the CLI prints of an answer never holds what it sent: the server at --url may echo the
// request (a wrong URL, a debugging proxy), and the CLI prints replies and errors as they come.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { AgentClient, CliError, EXIT, refused } from '../../../src/cli/client.ts'

const LOGIN = 'login-Pw-0987654321'
const SECRETS = { db: 'db-Pw-1234567890', key: 'enc-Key-1234567890', s3: 's3-Secret-1234567890', param: 'param-Tok-1234567890' }

describe('CLI client', () => {
  let server: http.Server
  let url: string
  before(async () => {
    server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const echo = `${JSON.stringify(req.headers)} ${body}`
        if (req.url === '/text') {
          res.writeHead(400, { 'content-type': 'text/plain' })
          return res.end(echo)
        }
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ message: echo, progress: 1234, [SECRETS.db]: 1 }))
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })
  after(() => server.close())

  const body = {
    id: 'x',
    encryption_key: SECRETS.key,
    destination: { type: 'S3', authSecret: SECRETS.s3 },
    backup: { password: SECRETS.db, parameters: [{ api_token: SECRETS.param }, { port: 1234 }] },
  }

  it('masks the login password (also inside the Basic header) and the body secrets in replies', async () => {
    const client = new AgentClient({ url, credentials: { username: 'manager', password: LOGIN }, source: 'test' })
    for (const path of ['/text', '/json']) {
      const reply = await client.request('POST', path, body)
      const shown = refused(reply).message + JSON.stringify(reply.body)
      assert.match(shown, /authorization/)
      const basic = Buffer.from(`manager:${LOGIN}`).toString('base64')
      for (const secret of [LOGIN, basic, ...Object.values(SECRETS)]) assert.ok(!shown.includes(secret), `${secret} in ${shown}`)
      if (path === '/json') assert.equal(reply.body.progress, 1234)
    }
  })

  it('refuses an agent URL with a password in it, without printing the password', async () => {
    const withPassword = url.replace('//', `//manager:${LOGIN}@`)
    const client = new AgentClient({ url: withPassword, credentials: undefined, source: 'test' })
    await assert.rejects(client.request('GET', '/backup'), (e: Error) => {
      assert.ok(e instanceof CliError && e.exitCode === EXIT.usage)
      assert.ok(!e.message.includes(LOGIN), e.message)
      return true
    })
  })
})
