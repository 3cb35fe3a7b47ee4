// The OpenAPI description of every route, by method and path. Loaded only when /openapi.json or
// /docs is first asked for (src/http/openapi.ts): the live routes carry no schema (they neither
// validate nor serialise with one), so TypeBox's large module graph stays out of start-up.
import type { FastifySchema } from 'fastify'
import type { JobKind } from '../jobs/request.ts'
import { Empty, HealthSchema, IdParamsSchema, ListingQuerySchema, ListingSchema, MessageSchema, RefusedSchema, pollingBodySchema, rejectedSchema } from './api-schemas.ts'
import { DeleteSchema, TriggerSchema } from './schemas.ts'

/** Documentation-only keys @fastify/swagger reads beside the JSON schemas. */
type RouteSchema = FastifySchema & { produces?: string[]; security?: unknown[] }

/** Every route's schema, keyed `METHOD /path` with Fastify's `:param` syntax. */
export function routeSchemas(): Map<string, RouteSchema> {
  const schemas = new Map<string, RouteSchema>()
  const add = (method: string, url: string, schema: RouteSchema) => schemas.set(`${method} ${url}`, schema)

  add('GET', '/status', { tags: ['agent'], summary: 'is the agent running (authenticated)', response: { 200: { ...MessageSchema, description: '{"message":"Client is running"}' } } })
  add('GET', '/healthz', {
    tags: ['agent'],
    summary: 'liveness, without credentials',
    description: '200 while the agent serves (with "store":"unwritable" while the job store cannot be written), 503 while it shuts down; says nothing else.',
    security: [],
    response: { 200: { ...HealthSchema, description: 'serving' }, 503: { ...HealthSchema, description: 'shutting down' } },
  })
  add('GET', '/metrics', {
    tags: ['agent'],
    summary: 'Prometheus metrics',
    description: 'Jobs started and finished, running jobs, stage durations, transfer bytes and time by backend, failures by reason, process metrics. Needs the credentials unless metrics_public is true.',
    produces: ['text/plain'],
    response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
  })
  add('GET', '/openapi.json', { tags: ['agent'], summary: 'this API as OpenAPI 3.1', security: [], response: { 200: { description: 'the OpenAPI document', type: 'object' } } })
  add('GET', '/docs', {
    tags: ['agent'],
    summary: 'this API as a page',
    security: [],
    produces: ['text/html'],
    response: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } },
  })
  for (const kind of ['backup', 'restore'] as const) jobRouteSchemas(kind, add)
  return schemas
}

function jobRouteSchemas(kind: JobKind, add: (method: string, url: string, schema: RouteSchema) => void): void {
  const tags = [kind]
  const polling = pollingBodySchema(kind)
  add(kind === 'backup' ? 'POST' : 'PUT', `/${kind}`, {
    tags,
    summary: `start a ${kind}`,
    description:
      kind === 'backup'
        ? 'Registers the job and answers at once; the stages run in the background (lock, check, backup, upload, cleanup, unlock). Poll GET /backup/{id}.'
        : 'Registers the job and answers at once; the stages run in the background (lock, download, restore, cleanup, unlock). Needs destination.filename unless skipStorage. Poll GET /restore/{id}.',
    body: TriggerSchema,
    response: {
      201: Empty('started; empty body'),
      400: rejectedSchema(kind),
      409: { ...polling, description: 'a job with this id exists: its polling body' },
      413: { ...MessageSchema, description: 'the body is larger than 1 MiB' },
      429: { ...RefusedSchema, description: 'max_job_number jobs are running' },
      503: { ...RefusedSchema, description: 'the agent is shutting down, or the job store cannot be written' },
    },
  })
  add('GET', `/${kind}`, {
    tags,
    summary: `list ${kind} jobs`,
    description: 'Summaries of the known jobs, newest first, a page at a time.',
    querystring: ListingQuerySchema,
    response: { 200: ListingSchema, 400: { ...MessageSchema, description: 'invalid query' } },
  })
  add('GET', `/${kind}/:id`, {
    tags,
    summary: `poll a ${kind} job`,
    description: 'The manager polls this every few seconds while the job runs, and once more at the end.',
    params: IdParamsSchema,
    response: { 200: polling, 400: { ...MessageSchema, description: 'invalid id' }, 404: Empty('no such job; empty body') },
  })
  add('POST', `/${kind}/:id/cancel`, {
    tags,
    summary: `cancel a running ${kind}`,
    description: 'Stops the running stage (script group or transfer); the job fails "cancelled"; cleanup and unlock still run.',
    params: IdParamsSchema,
    response: {
      202: { ...MessageSchema, description: 'being cancelled' },
      400: { ...MessageSchema, description: 'invalid id' },
      404: { ...MessageSchema, description: 'no such job' },
      409: { ...polling, description: 'not running: its polling body' },
    },
  })
  add('DELETE', `/${kind}`, {
    tags,
    summary: `forget a finished ${kind}`,
    description: 'Removes the job record (not the stored object).',
    body: DeleteSchema,
    response: {
      200: Empty('forgotten; empty body'),
      400: { ...MessageSchema, description: 'invalid body or id' },
      409: { ...polling, description: 'still running, or its recovery still owes cleanup or unlock: its polling body' },
      410: Empty('no such job; empty body'),
    },
  })
}
