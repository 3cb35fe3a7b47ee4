// The job routes of SPEC §2, the same for both kinds: POST /backup or PUT /restore starts a
// job, GET /<kind>/{id} polls it, DELETE /<kind> forgets a finished one.
import type { FastifyInstance, FastifyReply } from 'fastify'
import { newJob } from '../jobs/job.ts'
import type { JobKind } from '../jobs/request.ts'
import { runJob } from '../jobs/runner.ts'
import { logFields } from '../jobs/stages.ts'
import type { AppDeps } from './app.ts'
import { Empty, IdParamsSchema, ListingQuerySchema, ListingSchema, MessageSchema, RefusedSchema, pollingBodySchema, rejectedSchema } from './api-schemas.ts'
import { DeleteSchema, TriggerSchema } from './schemas.ts'
import { InvalidJson } from './body.ts'
import { encodeCursor, parseListingQuery } from './listing.ts'
import { idProblem, parseDelete, parseTrigger, triggerId } from './trigger.ts'

const INVALID_ID = { message: 'invalid id: 1-128 characters of A-Z a-z 0-9 . _ - and not . or ..' }
const JSON_TYPE = 'application/json; charset=utf-8'

export function registerJobRoutes(app: FastifyInstance, kind: JobKind, deps: AppDeps): void {
  const { registry, config } = deps
  const emptyLogs = Object.fromEntries(logFields(kind).map((f) => [f, '']))

  /** A polling-shaped body for a trigger that registered nothing. */
  const rejected = (state: string, errorMessage: string) => ({
    status: 'FAILED',
    message: `${kind} failed`,
    state,
    error_message: errorMessage,
    filenamePrefix: '',
    filename: '',
    filesize: { size: 0, unit: 'byte' },
    start_time: '',
    end_time: '',
    execution_time_ms: 0,
    ...emptyLogs,
  })
  const sendPollingBody = (reply: FastifyReply, status: number, body: string | Buffer) => reply.code(status).header('content-type', JSON_TYPE).send(body)
  const tags = [kind]
  const polling = pollingBodySchema(kind)
  const conflict = { ...polling, description: `a job with this id exists: its polling body` }

  app.route<{ Body: unknown }>({
    method: kind === 'backup' ? 'POST' : 'PUT',
    url: `/${kind}`,
    schema: {
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
        409: conflict,
        413: { ...MessageSchema, description: 'the body is larger than 1 MiB' },
        429: { ...RefusedSchema, description: 'max_job_number jobs are running' },
        503: { ...RefusedSchema, description: 'the agent is shutting down' },
      },
    },
    handler: async (req, reply) => {
      if (req.body instanceof InvalidJson) return reply.code(400).send(rejected('Body Deserialization', `the body is not valid JSON: ${req.body.reason}`))
      // A known id answers 409 with that job, before any other check (as the old agent did).
      const id = triggerId(req.body)
      const existing = id === undefined ? undefined : registry.get(kind, id)
      if (existing) return sendPollingBody(reply, 409, existing.body)

      const parsed = parseTrigger(kind, req.body, config)
      if (!parsed.ok) return reply.code(400).send(rejected('Body Deserialization', `invalid request: ${parsed.errors.join('; ')}`))

      const job = newJob(parsed.value, logFields(kind))
      const entry = registry.start(job)
      if (entry === 'exists') return sendPollingBody(reply, 409, registry.get(kind, job.id)?.body ?? '{}')
      if (entry === 'closing') {
        return reply.code(503).header('retry-after', '30').send({ message: `${kind} not started`, state: 'Job creation', error_message: 'the agent is shutting down; try again when it is back' })
      }
      if (entry === 'full') {
        return reply.code(429).send({
          message: `${kind} not started`,
          state: 'Job creation',
          error_message: `${registry.running} jobs are running, the most max_job_number allows; try again when one has finished`,
        })
      }
      req.log.info({ job: job.id, kind, type: job.request.destination.type, skipStorage: job.request.destination.skipStorage }, 'job started')
      void runJob(job, deps.runner)
      return reply.code(201).send()
    },
  })

  const listingSchema = {
    tags,
    summary: `list ${kind} jobs`,
    description: 'Summaries of the known jobs, newest first, a page at a time.',
    querystring: ListingQuerySchema,
    response: { 200: ListingSchema, 400: { ...MessageSchema, description: 'invalid query' } },
  }
  app.get<{ Querystring: Record<string, unknown> }>(`/${kind}`, { schema: listingSchema }, async (req, reply) => {
    const query = parseListingQuery(req.query)
    if (!query.ok) return reply.code(400).send({ message: `invalid query: ${query.errors.join('; ')}` })
    const page = registry.list(kind, query.value)
    return { jobs: page.jobs, next_cursor: page.next ? encodeCursor(page.next) : null }
  })

  // The manager's hot path: auth, an id check and a lookup of an already-serialised body.
  const pollSchema = {
    tags,
    summary: `poll a ${kind} job`,
    description: 'The manager polls this every few seconds while the job runs, and once more at the end.',
    params: IdParamsSchema,
    response: { 200: polling, 400: { ...MessageSchema, description: 'invalid id' }, 404: Empty('no such job; empty body') },
  }
  app.get<{ Params: { id: string } }>(`/${kind}/:id`, { schema: pollSchema }, async (req, reply) => {
    const { id } = req.params
    if (idProblem(id)) return reply.code(400).send(INVALID_ID)
    const entry = registry.get(kind, id)
    if (!entry) return reply.code(404).send()
    return sendPollingBody(reply, 200, registry.pollingBytes(entry))
  })

  const cancelSchema = {
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
  }
  app.post<{ Params: { id: string } }>(`/${kind}/:id/cancel`, { schema: cancelSchema }, async (req, reply) => {
    const { id } = req.params
    if (idProblem(id)) return reply.code(400).send(INVALID_ID)
    switch (registry.cancel(kind, id)) {
      case 'cancelled':
        req.log.info({ job: id, kind }, 'job cancelled')
        return reply.code(202).send({ message: `${kind} ${id} is being cancelled; cleanup and unlock still run` })
      case 'not running':
        return sendPollingBody(reply, 409, registry.get(kind, id)?.body ?? '{}')
      case 'unknown':
        return reply.code(404).send({ message: `no ${kind} job ${id}` })
    }
  })

  const deleteSchema = {
    tags,
    summary: `forget a finished ${kind}`,
    description: 'Removes the job record (not the stored object).',
    body: DeleteSchema,
    response: {
      200: Empty('forgotten; empty body'),
      400: { ...MessageSchema, description: 'invalid body or id' },
      409: { ...polling, description: 'still running: its polling body' },
      410: Empty('no such job; empty body'),
    },
  }
  app.delete<{ Body: unknown }>(`/${kind}`, { schema: deleteSchema }, async (req, reply) => {
    if (req.body instanceof InvalidJson) return reply.code(400).send({ message: `the body is not valid JSON: ${req.body.reason}` })
    const parsed = parseDelete(req.body)
    if (!parsed.ok) return reply.code(400).send({ message: `invalid request: ${parsed.errors.join('; ')}` })
    switch (registry.delete(kind, parsed.value)) {
      case 'deleted':
        return reply.code(200).send()
      case 'unknown':
        return reply.code(410).send()
      case 'running':
        return sendPollingBody(reply, 409, registry.get(kind, parsed.value)?.body ?? '{}')
    }
  })
}
