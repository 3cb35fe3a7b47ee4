// The platform limit for polling: a bare node:http server that answers every GET with the bytes
// the agent served for the polled job (BODY_FILE), after a constant-time Basic-auth check. It
// imports nothing from src/, so the agent's own code cannot slow it. Started by bench/polling.ts
// as its own process, like the agent: PORT, BODY_FILE, AUTH_USER, AUTH_PASSWORD.
import http from 'node:http'
import { readFileSync } from 'node:fs'
import { timingSafeEqual } from 'node:crypto'

const body = readFileSync(process.env.BODY_FILE as string)
const expected = Buffer.from(`Basic ${Buffer.from(`${process.env.AUTH_USER}:${process.env.AUTH_PASSWORD}`).toString('base64')}`, 'latin1')
const scratch = Buffer.alloc(expected.length)
const unauthorised = Buffer.from('{"message":"Unauthorised."}')

/**
 * The header against the expected one, byte for byte: the comparison's time depends on neither's
 * content. Node hands header values over as latin1 (one char per byte), so `write` is exact.
 */
function authorised(header: string | undefined): boolean {
  if (header === undefined) return false
  scratch.fill(0)
  scratch.write(header, 'latin1')
  return timingSafeEqual(scratch, expected) && header.length === expected.length
}

const server = http.createServer((req, res) => {
  if (!authorised(req.headers.authorization)) {
    res.writeHead(401, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': unauthorised.length,
      'www-authenticate': 'Basic realm="bare"',
    })
    res.end(unauthorised)
    return
  }
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  res.end(body)
})
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\n'))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
