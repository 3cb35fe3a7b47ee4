// The API server: plain node:http (node:https with TLS material), the route table of
// src/http/routes.ts behind the router of src/http/router.ts, and around every route the same
// steps in the same order: connection limit, login throttle and credentials, the body (JSON
// whatever the Content-Type, at most 1 MiB), the handler, one JSON error shape, one log line.
//
// No web framework: the agent serves 15 routes, and Fastify cost ~13 MB resident and, per poll,
// routing, hooks and a child logger per request. With this file a poll of a running job (~1 KB)
// is a segment walk, one credentials comparison and one write.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { BoundSocket, Socket } from 'node:net'
import { basicAuthChecker } from './auth.ts'
import { parseJsonBody } from './body.ts'
import { Exchange, JSON_TYPE, type AppDeps, type Answer } from './exchange.ts'
import {
  bodyStillArriving,
  drainAfterAnswer,
  HEADERS_TIMEOUT_MS,
  IDLE_TIMEOUT_MS,
  KEEP_ALIVE_TIMEOUT_MS,
  limitConnections,
  REQUEST_TIMEOUT_MS,
  TIMEOUT_CHECK_INTERVAL_MS,
} from './limits.ts'
import { Router, type Found } from './router.ts'
import type { Route } from './route.ts'
import { ROUTES } from './routes.ts'
import { LoginThrottle } from './throttle.ts'
import { httpsOptions } from './tls.ts'
import { http, https, net } from '../util/builtins.ts'

/** A monotonic clock in ms without the global \`performance\`, which loads node:perf_hooks (~1 ms of a start). */
function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime()
  return seconds * 1e3 + nanoseconds / 1e6
}

export type { AppDeps } from './exchange.ts'

export const BODY_LIMIT_BYTES = 1024 * 1024

/** Methods whose body is read (the others' is discarded unread). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

export interface ApiServer {
  server: HttpServer | HttpsServer
  listen(host: string, port: number): Promise<void>
  /** Stops accepting connections, closes idle ones, and resolves once the open ones have ended. */
  close(): Promise<void>
}

/**
 * A request URL for the log: the query's names stay, their values do not. The API takes no secret
 * in a query, but a client may still send one there (an access token, a password by mistake).
 */
export function loggedUrl(url: string): string {
  return url.replace(/([?&][^=&#]*=)[^&#]*/g, '$1…').replace(/#.*/, '')
}

/** A body larger than BODY_LIMIT_BYTES. */
class BodyTooLarge extends Error {}

const TOO_LARGE: Answer = {
  status: 413,
  json: { message: `the request body is larger than ${BODY_LIMIT_BYTES} bytes` },
  headers: { connection: 'close' },
}
const INTERNAL_ERROR: Answer = { status: 500, json: { message: 'internal error' } }
const UNAUTHORISED: Answer = {
  status: 401,
  json: { message: 'Unauthorised.' },
  headers: { 'www-authenticate': 'Basic realm="osb-backup-agent"' },
}
const OVER_CONNECTION_LIMIT: Answer = {
  status: 429,
  json: { message: 'too many open connections; try again shortly' },
  headers: { connection: 'close', 'retry-after': '1' },
}
const NOT_FOUND: Answer = { status: 404, json: { message: 'no such route' } }
const BAD_PATH: Answer = {
  status: 400,
  json: { message: 'the request path is malformed: a %-escape that is not UTF-8, or no path at all' },
}
const STOPPING: Answer = { status: 503, json: { message: 'the agent is stopping' }, headers: { connection: 'close' } }

// requireHostHeader: Node itself would answer an HTTP/1.1 request without Host with a bare 400
// (no JSON); the agent never looks at Host, so such a request gets the API's own answer.
const SERVER_OPTIONS = {
  headersTimeout: HEADERS_TIMEOUT_MS,
  requestTimeout: REQUEST_TIMEOUT_MS,
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
  requireHostHeader: false,
}

/** What every request of one server reads, and the two things it counts or flips. */
interface ServerContext {
  deps: AppDeps
  router: Router
  authorised: (header: string | undefined) => boolean
  throttle: LoginThrottle
  isPublic: (route: Route) => boolean
  overLimit: (socket: Socket) => boolean
  requests: number
  closing: boolean
}

export function createApiServer(deps: AppDeps): ApiServer {
  const { config, log } = deps
  const context: ServerContext = {
    deps,
    router: new Router(ROUTES),
    authorised: basicAuthChecker(config.clientUsername, config.clientPassword),
    throttle: new LoginThrottle({ maxFailures: config.authMaxFailures, exempt: config.authThrottleExempt }),
    isPublic: (route) => route.access === 'public' || (route.access === 'metrics' && config.metricsPublic),
    overLimit: (socket) => connections.overLimit(socket),
    requests: 0,
    closing: false,
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse) => handleRequest(context, req, res)
  const server = deps.tls
    ? https().createServer({ ...httpsOptions(deps.tls), ...SERVER_OPTIONS }, onRequest)
    : http.createServer(SERVER_OPTIONS, onRequest)
  // A connection that sends nothing at all (Node's header timeout starts with the first byte).
  server.setTimeout(IDLE_TIMEOUT_MS)
  const connections = limitConnections(server, deps.tls ? 'secureConnection' : 'connection')
  server.on('connect', answerConnect)
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => answerClientError(log, error, socket))

  return {
    server,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(boundOrAddress(host, port), () => {
          server.off('error', reject)
          resolve()
        })
      }),
    close: () =>
      new Promise((resolve) => {
        context.closing = true
        server.close(() => resolve())
        server.closeIdleConnections()
      }),
  }
}

/**
 * An IP address is bound at once (net.BoundSocket); only a host name goes through listen's DNS
 * lookup. That lookup's check of the address compiled Node's IPv6 regular expression: ~7 ms of
 * a start on the bench VM, for an address that needs no lookup (docs/PERFORMANCE.md).
 */
function boundOrAddress(host: string, port: number): BoundSocket | { host: string; port: number } {
  if (net.BoundSocket === undefined) return { host, port } // Node before 24.21 has no BoundSocket
  try {
    return new net.BoundSocket({ host, port })
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_INVALID_ARG_VALUE') return { host, port } // a host name
    throw error
  }
}

function handleRequest(c: ServerContext, req: IncomingMessage, res: ServerResponse): void {
  const started = monotonicMs()
  const method = req.method ?? 'GET'
  const url = req.url ?? '/'
  const found = c.router.find(method, url)
  const x =
    found.kind === 'route'
      ? new Exchange(req, res, c.deps, found.params, found.query, ++c.requests, started)
      : new Exchange(req, res, c.deps, {}, '', ++c.requests, started)

  if (found.kind === 'bad path') return send(c, x, BAD_PATH)
  if (c.closing) return send(c, x, STOPPING)
  if (c.overLimit(req.socket)) return send(c, x, OVER_CONNECTION_LIMIT, true)
  if (found.kind !== 'route' || !c.isPublic(found.route)) {
    if (!admitted(c, x, method, url)) return
  }
  if (!hasBody(req, method)) return respond(c, x, found)
  readBody(req).then(
    (body) => {
      x.body = body
      respond(c, x, found)
    },
    (error: unknown) =>
      send(
        c,
        x,
        error instanceof BodyTooLarge
          ? TOO_LARGE
          : { status: 400, json: { message: (error as Error).message }, headers: { connection: 'close' } },
      ),
  )
}

/** Whether the address may try and the credentials are right; when not, the refusal is sent. */
function admitted(c: ServerContext, x: Exchange, method: string, url: string): boolean {
  const { config } = c.deps
  const ip = x.req.socket.remoteAddress
  // A locked-out address is answered before its credentials are looked at.
  const wait = c.throttle.lockedFor(ip)
  if (wait > 0) {
    send(
      c,
      x,
      {
        status: 429,
        json: { message: `too many failed logins from this address; try again in ${wait} s` },
        headers: { 'retry-after': String(wait) },
      },
      true,
    )
    return false
  }
  if (!c.authorised(x.req.headers.authorization)) {
    x.log('warn', { method, url: loggedUrl(url), ip }, 'login failed')
    if (c.throttle.recordFailure(ip))
      x.log('warn', { ip, failures: config.authMaxFailures }, 'address locked out for a minute after repeated failed logins')
    send(c, x, UNAUTHORISED)
    return false
  }
  return true
}

/** The route's answer, or why there is none. */
function respond(c: ServerContext, x: Exchange, found: Found): void {
  if (found.kind === 'route') return run(c, found.route, x)
  if (found.kind === 'method not allowed') {
    const allow = found.allow
    return send(c, x, {
      status: 405,
      json: { message: `method ${x.req.method} is not allowed here; use ${allow.join(' or ')}` },
      headers: { allow: allow.join(', ') },
    })
  }
  send(c, x, NOT_FOUND)
}

/** Runs the handler; what it throws or rejects with is a 500, logged. */
function run(c: ServerContext, route: Route, x: Exchange): void {
  try {
    const result = route.handle(x)
    if (result instanceof Promise)
      result.then(
        (a) => send(c, x, a),
        (error: unknown) => failed(c, x, error),
      )
    else send(c, x, result)
  } catch (error) {
    failed(c, x, error)
  }
}

function failed(c: ServerContext, x: Exchange, error: unknown): void {
  x.log('error', { err: error }, 'unexpected error')
  send(c, x, INTERNAL_ERROR)
}

/**
 * Writes the answer and its log line: one per request, at debug for a successful GET (the
 * manager's polls) and for answers of a limit (a flood makes many), at info otherwise.
 */
function send(c: ServerContext, x: Exchange, a: Answer, limited = false): void {
  const { req, res } = x
  let body: Buffer | string | undefined
  let type: string | undefined
  let length = 0
  if (a.json !== undefined) {
    body = JSON.stringify(a.json)
    type = JSON_TYPE
    length = Buffer.byteLength(body)
  } else if (a.bytes !== undefined) {
    body = a.bytes
    type = a.type
    length = typeof body === 'string' ? (a.length ?? Buffer.byteLength(body)) : body.length
  }
  const headers: string[] = []
  if (type !== undefined) headers.push('content-type', type)
  headers.push('content-length', String(length))
  if (a.headers) for (const name in a.headers) headers.push(name, a.headers[name] as string)
  // An answer given while the body is still arriving (401, 429, 413): it closes the connection,
  // but only after reading what the client is still sending, so the client gets to read it.
  if (bodyStillArriving(req)) {
    if (a.headers?.connection === undefined) headers.push('connection', 'close')
    drainAfterAnswer(req)
  } else if (c.closing && a.headers?.connection === undefined) headers.push('connection', 'close')
  res.writeHead(a.status, headers)
  res.end(body)

  const quiet = limited || (req.method === 'GET' && a.status === 200)
  const level = quiet ? 'debug' : 'info'
  if (c.deps.log.isLevelEnabled(level))
    x.log(
      level,
      { method: req.method, url: loggedUrl(req.url ?? '/'), status: a.status, ms: Math.round(monotonicMs() - x.started) },
      'request',
    )
}

// Node ends a CONNECT request's socket without a word when nothing listens for it; answer it
// like any other method the API does not have.
function answerConnect(_req: unknown, socket: Socket): void {
  const body = JSON.stringify({ message: 'method CONNECT is not allowed' })
  socket.on('error', () => socket.destroy()) // a client gone already is no error of ours
  socket.end(
    `HTTP/1.1 405 Method Not Allowed\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

// What Node cannot parse (or a request past its timeout) gets a JSON answer before the socket
// closes, instead of Node's bare one.
function answerClientError(log: AppDeps['log'], error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, reason, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'Client Timeout']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'Exceeded maximum allowed HTTP header size']
        : [400, 'Bad Request', 'Client Error']
  log.trace({ err: error }, 'client error')
  const body = JSON.stringify({ error: reason, message, statusCode: status })
  if (socket.writable)
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${body.length}\r\nContent-Type: application/json\r\n\r\n${body}`)
  socket.destroy(error)
}

/** Whether a body is read: methods that take one, when the request says one follows. */
function hasBody(req: IncomingMessage, method: string): boolean {
  if (!BODY_METHODS.has(method)) return false
  const headers = req.headers
  // With a Content-Type, even an empty body is read (and is then invalid JSON).
  if (headers['content-type'] !== undefined) return true
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}

/** The body as JSON (or InvalidJson); BodyTooLarge past BODY_LIMIT_BYTES. */
function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > BODY_LIMIT_BYTES) return reject(new BodyTooLarge())
    const chunks: Buffer[] = []
    let received = 0
    const onData = (chunk: Buffer) => {
      received += chunk.length
      if (received > BODY_LIMIT_BYTES) {
        stop()
        reject(new BodyTooLarge())
      } else chunks.push(chunk)
    }
    const onEnd = () => {
      stop()
      resolve(parseJsonBody(Buffer.concat(chunks)))
    }
    const onError = (error: Error) => {
      stop()
      reject(error)
    }
    const stop = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}
