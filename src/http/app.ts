// The Fastify app: body parsing, auth, one JSON error shape, the routes. Buildable without
// listening, so tests can inject requests.
import swagger from '@fastify/swagger'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config.ts'
import type { JobRegistry } from '../jobs/registry.ts'
import type { RunnerDeps } from '../jobs/runner.ts'
import type { AgentMetrics } from '../metrics.ts'
import { basicAuthChecker } from './auth.ts'
import { InvalidJson } from './body.ts'
import { registerDocsRoutes, SWAGGER_OPTIONS } from './docs.ts'
import { registerJobRoutes } from './jobs.ts'
import { registerMetricsRoutes } from './metrics.ts'
import { registerStatusRoutes } from './status.ts'

export const BODY_LIMIT_BYTES = 1024 * 1024

export interface AppDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  runner: RunnerDeps
  metrics: AgentMetrics
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

const registered = new WeakMap<FastifyInstance, { method: string; url: string }[]>()

/** Every method and path the app registered (HEAD included), for tests and the docs check. */
export function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  return registered.get(app) ?? []
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: 1024 },
  })

  // Route schemas document the API (OpenAPI); they neither validate nor serialise: the bodies
  // are checked by src/http/trigger.ts with the old agent's rules and answered in its shapes.
  app.setValidatorCompiler(() => () => true)
  app.setSerializerCompiler(() => (data) => JSON.stringify(data))
  await app.register(swagger, SWAGGER_OPTIONS)
  const routes: { method: string; url: string }[] = []
  registered.set(app, routes)
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url })
  })

  // JSON whatever the Content-Type (the old agent never looked at it). Invalid JSON is not an
  // error here: each route answers it in its own body shape.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string))
    } catch (error) {
      done(null, new InvalidJson((error as Error).message))
    }
  })

  const authorised = basicAuthChecker(deps.config.clientUsername, deps.config.clientPassword)
  app.addHook('onRequest', async (req, reply) => {
    if (isPublic(req.routeOptions.config, deps.config)) return
    if (authorised(req.headers.authorization)) return
    req.log.warn({ method: req.method, url: req.url, ip: req.ip }, 'login failed')
    return reply.code(401).header('www-authenticate', 'Basic realm="osb-backup-agent"').send({ message: 'Unauthorised.' })
  })

  // One line per request; successful polls (the manager's every-5-s loop) only at debug.
  app.addHook('onResponse', async (req, reply) => {
    const quiet = req.method === 'GET' && reply.statusCode === 200
    const level = quiet ? 'debug' : 'info'
    if (!deps.log.isLevelEnabled(level)) return
    req.log[level]({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
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

  registerStatusRoutes(app, deps.registry)
  registerMetricsRoutes(app, deps.metrics)
  registerDocsRoutes(app)
  registerJobRoutes(app, 'backup', deps)
  registerJobRoutes(app, 'restore', deps)
  return app
}
