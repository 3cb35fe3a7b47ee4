// The Fastify app: server limits, login throttling, body parsing, auth, one JSON error shape,
// the routes. Buildable without listening, so tests can inject requests.
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { JobRegistry } from '../jobs/registry.ts'
import type { RunnerDeps } from '../jobs/runner.ts'
import type { AgentMetrics } from '../metrics.ts'
import { basicAuthChecker } from './auth.ts'
import { parseJsonBody } from './body.ts'
import { registerDocsRoutes, type Route } from './docs.ts'
import { registerJobRoutes } from './jobs.ts'
import { bodyStillArriving, drainAfterAnswer, HEADERS_TIMEOUT_MS, IDLE_TIMEOUT_MS, KEEP_ALIVE_TIMEOUT_MS, limitConnections, REQUEST_TIMEOUT_MS, TIMEOUT_CHECK_INTERVAL_MS } from './limits.ts'
import { registerMetricsRoutes } from './metrics.ts'
import { registerStatusRoutes } from './status.ts'
import { LoginThrottle } from './throttle.ts'
import { httpsOptions, type TlsMaterial } from './tls.ts'

export const BODY_LIMIT_BYTES = 1024 * 1024

export interface AppDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  runner: RunnerDeps
  metrics: AgentMetrics
  /** Serve HTTPS with these certificates (src/http/tls.ts); plain HTTP without. */
  tls?: TlsMaterial | undefined
}

/** Paths and the methods they answer, for 405s (Fastify itself only knows 404). */
const ROUTES: [RegExp, string[]][] = [
  [/^\/(status|healthz|metrics|openapi\.json|docs)$/, ['GET', 'HEAD']],
  [/^\/backup$/, ['GET', 'HEAD', 'POST', 'DELETE']],
  [/^\/restore$/, ['GET', 'HEAD', 'PUT', 'DELETE']],
  [/^\/(backup|restore)\/[^/]*$/, ['GET', 'HEAD']],
  [/^\/(backup|restore)\/[^/]*\/cancel$/, ['POST']],
]

/** Route config: `public` routes need no credentials; `metrics` ones only when metrics_public. */
export interface RouteAccess {
  public?: boolean
  metrics?: boolean
}

function isPublic(routeConfig: unknown, config: Config): boolean {
  const access = routeConfig as RouteAccess | undefined
  return access?.public === true || (access?.metrics === true && config.metricsPublic)
}

/**
 * A request URL for the log: the query's names stay, their values do not. The API takes no secret
 * in a query, but a client may still send one there (an access token, a password by mistake).
 */
export function loggedUrl(url: string): string {
  return url.replace(/([?&][^=&#]*=)[^&#]*/g, '$1…').replace(/#.*/, '')
}

const registered = new WeakMap<FastifyInstance, { method: string; url: string }[]>()

/** Every method and path the app registered (HEAD included), for tests and the docs check. */
export function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  return registered.get(app) ?? []
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // requireHostHeader: Node itself would answer an HTTP/1.1 request without Host with a bare 400
  // (no JSON); the agent never looks at Host, so such a request gets the API's own answer.
  const serverOptions = { headersTimeout: HEADERS_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS, requireHostHeader: false }
  const options: FastifyServerOptions & { https?: object; http?: object } = {
    loggerInstance: deps.log as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: 1024 },
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectionTimeout: IDLE_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  }
  if (deps.tls) options.https = { ...httpsOptions(deps.tls), ...serverOptions }
  else options.http = serverOptions
  // Fastify types an HTTPS app differently; the routes and hooks are the same either way.
  const app = Fastify(options) as unknown as FastifyInstance
  const connections = limitConnections(app.server, deps.tls ? 'secureConnection' : 'connection')

  // No route has a schema: bodies are checked by src/http/trigger.ts with the old agent's rules
  // and answered in its shapes; the schemas in src/http/route-schemas.ts only document the API.
  const routes: Route[] = []
  registered.set(app, routes)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url })
  })

  // JSON whatever the Content-Type (the old agent never looked at it). Invalid JSON is not an
  // error here: each route answers it in its own body shape.
  app.removeAllContentTypeParsers()
  // Bytes, not a string: decoding is parseJsonBody's, which refuses invalid UTF-8 in the route's
  // own error shape (Fastify's string mode would answer a generic length mismatch instead).
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, parseJsonBody(body as Buffer)))

  /** Requests answered by a limit rather than a route: logged at debug, since a flood makes many. */
  const limited = new WeakSet<FastifyRequest>()
  const authorised = basicAuthChecker(deps.config.clientUsername, deps.config.clientPassword)
  const throttle = new LoginThrottle({ maxFailures: deps.config.authMaxFailures, exempt: deps.config.authThrottleExempt })
  app.addHook('onRequest', async (req, reply) => {
    if (connections.overLimit(req.raw.socket)) {
      limited.add(req)
      return reply.code(429).header('connection', 'close').header('retry-after', '1').send({ message: 'too many open connections; try again shortly' })
    }
    if (isPublic(req.routeOptions.config, deps.config)) return
    // A locked-out address is answered before its credentials are looked at.
    const wait = throttle.lockedFor(req.ip)
    if (wait > 0) {
      limited.add(req)
      return reply.code(429).header('retry-after', String(wait)).send({ message: `too many failed logins from this address; try again in ${wait} s` })
    }
    if (authorised(req.headers.authorization)) return
    req.log.warn({ method: req.method, url: loggedUrl(req.url), ip: req.ip }, 'login failed')
    if (throttle.recordFailure(req.ip)) {
      req.log.warn({ ip: req.ip, failures: deps.config.authMaxFailures }, 'address locked out for a minute after repeated failed logins')
    }
    return reply.code(401).header('www-authenticate', 'Basic realm="osb-backup-agent"').send({ message: 'Unauthorised.' })
  })

  // An answer given while the body is still arriving (401, 429, 413): it closes the connection,
  // but only after reading what the client is still sending, so the client gets to read it.
  // A callback hook, not an async one: it runs on every answer (each poll), where a promise per
  // request is measurable.
  app.addHook('onSend', (req, reply, payload, done) => {
    if (bodyStillArriving(req.raw)) {
      reply.header('connection', 'close')
      drainAfterAnswer(req.raw)
    }
    done(null, payload)
  })

  // One line per request; successful polls (the manager's every-5-s loop) only at debug.
  app.addHook('onResponse', async (req, reply) => {
    const quiet = (req.method === 'GET' && reply.statusCode === 200) || limited.has(req)
    const level = quiet ? 'debug' : 'info'
    if (!deps.log.isLevelEnabled(level)) return
    req.log[level]({ method: req.method, url: loggedUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
  })

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    if (status === 500) {
      req.log.error({ err: error }, 'unexpected error')
      return reply.code(500).send({ message: 'internal error' })
    }
    const message = error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `the request body is larger than ${BODY_LIMIT_BYTES} bytes` : error.message
    return reply.code(status).send({ message })
  })

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? ''
    const allowed = ROUTES.find(([pattern]) => pattern.test(path))?.[1]
    if (allowed) return reply.code(405).header('allow', allowed.join(', ')).send({ message: `method ${req.method} is not allowed here; use ${allowed.join(' or ')}` })
    return reply.code(404).send({ message: 'no such route' })
  })

  // Node ends a CONNECT request's socket without a word when nothing listens for it; answer it
  // like any other method the API does not have.
  app.server.on('connect', (_req: unknown, socket: Socket) => {
    const body = JSON.stringify({ message: 'method CONNECT is not allowed' })
    socket.on('error', () => socket.destroy()) // a client gone already is no error of ours
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  })

  registerStatusRoutes(app, deps.registry)
  registerMetricsRoutes(app, deps.metrics)
  registerDocsRoutes(app, routes)
  registerJobRoutes(app, 'backup', deps)
  registerJobRoutes(app, 'restore', deps)
  return app
}
