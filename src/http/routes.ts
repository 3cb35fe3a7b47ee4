// The API's one route table: each route's method, path, who may call it, its OpenAPI description
// and its handler. The router (src/http/router.ts: HEAD for every GET, 405 with Allow, 404),
// the server's access check (src/http/server.ts) and the OpenAPI document and /docs page
// (src/http/openapi.ts) all read it; nothing else lists routes.
import { JOB_KINDS, type JobKind } from '../jobs/request.ts'
import {
  Empty,
  HealthSchema,
  IdParamsSchema,
  ListingQuerySchema,
  ListingSchema,
  MessageSchema,
  RefusedSchema,
  pollingBodySchema,
  rejectedSchema,
} from './api-schemas.ts'
import { apiDocs } from './docs.ts'
import { jobHandlers } from './jobs.ts'
import { metrics } from './metrics.ts'
import type { Route } from './route.ts'
import { DeleteSchema, TriggerSchema, VerifySchema } from './schemas.ts'
import { health, status } from './status.ts'

// The document describes the whole table, its own two routes included: read at the first request.
const docs = apiDocs(() => ROUTES)

const agentRoutes: Route[] = [
  {
    method: 'GET',
    path: '/status',
    access: 'authenticated',
    doc: {
      tags: ['agent'],
      summary: 'is the agent running (authenticated)',
      responses: { 200: { ...MessageSchema, description: '{"message":"Client is running"}' } },
    },
    handle: status,
  },
  {
    method: 'GET',
    path: '/healthz',
    access: 'public',
    doc: {
      tags: ['agent'],
      summary: 'liveness, without credentials',
      description:
        '200 while the agent serves (with "store":"unwritable" while the job store cannot be written), 503 while it shuts down; says nothing else.',
      responses: { 200: { ...HealthSchema, description: 'serving' }, 503: { ...HealthSchema, description: 'shutting down' } },
    },
    handle: health,
  },
  {
    method: 'GET',
    path: '/metrics',
    access: 'metrics',
    doc: {
      tags: ['agent'],
      summary: 'Prometheus metrics',
      description:
        'Jobs started and finished, running jobs, stage durations, transfer bytes and time by backend, failures by reason, process metrics. Needs the credentials unless metrics_public is true.',
      responses: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
    },
    handle: metrics,
  },
  {
    method: 'GET',
    path: '/openapi.json',
    access: 'public',
    doc: {
      tags: ['agent'],
      summary: 'this API as OpenAPI 3.1',
      responses: { 200: { description: 'the OpenAPI document', type: 'object' } },
    },
    handle: docs.openApi,
  },
  {
    method: 'GET',
    path: '/docs',
    access: 'public',
    doc: {
      tags: ['agent'],
      summary: 'this API as a page',
      responses: { 200: { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } },
    },
    handle: docs.docsPage,
  },
]

/** What each of a kind's routes is built from; the shared schema and tags are made once per kind. */
interface JobRouteParts {
  kind: JobKind
  tags: string[]
  polling: ReturnType<typeof pollingBodySchema>
  handlers: ReturnType<typeof jobHandlers>
}

/** GET /{kind}: the listing. */
function listRoute({ kind, tags, handlers }: JobRouteParts): Route {
  return {
    method: 'GET',
    path: `/${kind}`,
    access: 'authenticated',
    doc: {
      tags,
      summary: `list ${kind} jobs`,
      description: 'Summaries of the known jobs, newest first, a page at a time.',
      query: ListingQuerySchema,
      responses: { 200: ListingSchema, 400: { ...MessageSchema, description: 'invalid query' } },
    },
    handle: handlers.list,
  }
}

const TRIGGER_DESCRIPTIONS: Record<JobKind, string> = {
  backup:
    'Registers the job and answers at once; the stages run in the background (lock, check, backup, upload, cleanup, unlock; verify-upload with verify_after_upload). Poll GET /backup/{id}.',
  restore:
    'Registers the job and answers at once; the stages run in the background (lock, download, restore, cleanup, unlock). Needs destination.filename unless skipStorage. Poll GET /restore/{id}.',
  verify:
    'Registers the job and answers at once; it reads the stored object destination.filename to its end without writing it anywhere and checks its SHA-256 (a streamed .osb object: its format and trailer, and with encryption_key every frame). Runs no script. Poll GET /verify/{id}.',
}

/** POST /backup, PUT /restore or POST /verify: start a job. */
function triggerRoute({ kind, tags, polling, handlers }: JobRouteParts): Route {
  return {
    method: kind === 'restore' ? 'PUT' : 'POST',
    path: `/${kind}`,
    access: 'authenticated',
    doc: {
      tags,
      summary: `start a ${kind}`,
      description: TRIGGER_DESCRIPTIONS[kind],
      body: kind === 'verify' ? VerifySchema : TriggerSchema,
      responses: {
        201: Empty('started; empty body'),
        400: rejectedSchema(kind),
        409: { ...polling, description: 'a job with this id exists: its polling body' },
        413: { ...MessageSchema, description: 'the body is larger than 1 MiB' },
        429: { ...RefusedSchema, description: 'max_job_number jobs are running' },
        503: { ...RefusedSchema, description: 'the agent is shutting down, or the job store cannot be written' },
      },
    },
    handle: handlers.trigger,
  }
}

/** DELETE /{kind}: forget a finished job. */
function forgetRoute({ kind, tags, polling, handlers }: JobRouteParts): Route {
  return {
    method: 'DELETE',
    path: `/${kind}`,
    access: 'authenticated',
    doc: {
      tags,
      summary: `forget a finished ${kind}`,
      description: 'Removes the job record (not the stored object).',
      body: DeleteSchema,
      responses: {
        200: Empty('forgotten; empty body'),
        400: { ...MessageSchema, description: 'invalid body or id' },
        409: { ...polling, description: 'still running, or its recovery still owes cleanup or unlock: its polling body' },
        410: Empty('no such job; empty body'),
      },
    },
    handle: handlers.forget,
  }
}

/** GET /{kind}/{id}: the polling body. */
function pollRoute({ kind, tags, polling, handlers }: JobRouteParts): Route {
  return {
    method: 'GET',
    path: `/${kind}/:id`,
    access: 'authenticated',
    doc: {
      tags,
      summary: `poll a ${kind} job`,
      description: 'The manager polls this every few seconds while the job runs, and once more at the end.',
      params: IdParamsSchema,
      responses: { 200: polling, 400: { ...MessageSchema, description: 'invalid id' }, 404: Empty('no such job; empty body') },
    },
    handle: handlers.poll,
  }
}

/** POST /{kind}/{id}/cancel. */
function cancelRoute({ kind, tags, polling, handlers }: JobRouteParts): Route {
  return {
    method: 'POST',
    path: `/${kind}/:id/cancel`,
    access: 'authenticated',
    doc: {
      tags,
      summary: `cancel a running ${kind}`,
      description: 'Stops the running stage (script group or transfer); the job fails "cancelled"; cleanup and unlock still run.',
      params: IdParamsSchema,
      responses: {
        202: { ...MessageSchema, description: 'being cancelled' },
        400: { ...MessageSchema, description: 'invalid id' },
        404: { ...MessageSchema, description: 'no such job' },
        409: { ...polling, description: 'not running: its polling body' },
      },
    },
    handle: handlers.cancel,
  }
}

const JOB_ROUTES: readonly ((parts: JobRouteParts) => Route)[] = [listRoute, triggerRoute, forgetRoute, pollRoute, cancelRoute]

function jobRoutes(kind: JobKind): Route[] {
  const parts: JobRouteParts = { kind, tags: [kind], polling: pollingBodySchema(kind), handlers: jobHandlers(kind) }
  return JOB_ROUTES.map((route) => route(parts))
}

export const ROUTES: readonly Route[] = [...agentRoutes, ...JOB_KINDS.flatMap(jobRoutes)]
