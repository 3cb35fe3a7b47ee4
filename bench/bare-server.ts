// The platform limit for polling: a bare node:http server that answers every GET with the same
// bytes the agent serves for a poll, after the same Basic-auth check (src/http/auth.ts). Started
// by bench/polling.ts as its own process, like the agent: PORT, BODY_FILE, AUTH_USER, AUTH_PASSWORD.
import http from 'node:http'
import { readFileSync } from 'node:fs'
import { basicAuthChecker } from '../src/http/auth.ts'

const body = readFileSync(process.env.BODY_FILE as string)
const authorised = basicAuthChecker(process.env.AUTH_USER as string, process.env.AUTH_PASSWORD as string)
const unauthorised = Buffer.from('{"message":"Unauthorised."}')

const server = http.createServer((req, res) => {
  if (!authorised(req.headers.authorization)) {
    res.writeHead(401, { 'content-type': 'application/json; charset=utf-8', 'content-length': unauthorised.length, 'www-authenticate': 'Basic realm="bare"' })
    res.end(unauthorised)
    return
  }
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
  res.end(body)
})
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\n'))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
