// The platform's floor for start-up: a bare node:http server that answers every request with the
// bytes of BODY_FILE on 127.0.0.1:PORT. Plain JavaScript (type stripping would load its own
// compiler first), node:http fetched as the agent fetches it (src/util/builtins.ts), nothing
// from src/. Started by bench/jobs.ts's start-up figure, alternating with the agent.
import { readFileSync } from 'node:fs'

const body = readFileSync(process.env.BODY_FILE)
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length }
process
  .getBuiltinModule('node:http')
  .createServer((_req, res) => {
    res.writeHead(200, headers)
    res.end(body)
  })
  .listen(Number(process.env.PORT), '127.0.0.1')
