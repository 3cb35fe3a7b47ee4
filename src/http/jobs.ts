// The job routes of SPEC §2, the same for both kinds: POST /backup or PUT /restore starts a
// job, GET /<kind>/{id} polls it, DELETE /<kind> forgets a finished one.
import type { FastifyInstance, FastifyReply } from 'fastify'
import { newJob } from '../jobs/job.ts'
import type { JobKind } from '../jobs/request.ts'
import { runJob } from '../jobs/runner.ts'
import { logFields } from '../jobs/stages.ts'
import type { AppDeps } from './app.ts'
import { InvalidJson } from './body.ts'
import { encodeCursor, parseListingQuery } from './listing.ts'
import { idProblem, triggerId } from './ids.ts'

const INVALID_ID = { message: 'invalid id: 1-128 characters of A-Z a-z 0-9 . _ - and not . or ..' }
const JSON_TYPE = 'application/json; charset=utf-8'

/**
 * The body checks (TypeBox's schema compiler, a large module graph), loaded on the first trigger
 * or DELETE: start-up and polls never wait for them. The OpenAPI schemas of these routes live in
 * src/http/route-schemas.ts, loaded only for /openapi.json and /docs.
 */
let checks: Promise<typeof import('./trigger.ts')> | undefined
const bodyChecks = () => (checks ??= import('./trigger.ts'))

/** Loads the body checks ahead of the first trigger (main.ts, once the agent listens). */
export function preloadBodyChecks(): Promise<unknown> {
  return bodyChecks()
}

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
  app.route<{ Body: unknown }>({
    method: kind === 'backup' ? 'POST' : 'PUT',
    url: `/${kind}`,
    handler: async (req, reply) => {
      if (req.body instanceof InvalidJson) return reply.code(400).send(rejected('Body Deserialization', `the body is not valid JSON: ${req.body.reason}`))
      // A known id answers 409 with that job, before any other check (as the old agent did).
      const id = triggerId(req.body)
      const existing = id === undefined ? undefined : registry.get(kind, id)
      if (existing) return sendPollingBody(reply, 409, existing.body)

      const parsed = (await bodyChecks()).parseTrigger(kind, req.body, config)
      if (!parsed.ok) return reply.code(400).send(rejected('Body Deserialization', `invalid request: ${parsed.errors.join('; ')}`))

      const job = newJob(parsed.value, logFields(kind))
      const entry = registry.start(job)
      if (entry === 'exists') return sendPollingBody(reply, 409, registry.get(kind, job.id)?.body ?? '{}')
      if (entry === 'closing') {
        return reply.code(503).header('retry-after', '30').send({ message: `${kind} not started`, state: 'Job creation', error_message: 'the agent is shutting down; try again when it is back' })
      }
      if (entry === 'store') {
        const problem = registry.storeProblem ?? 'the job store could not be written'
        return reply.code(503).header('retry-after', '30').send({ message: `${kind} not started: ${problem}; try again when it can be written`, state: 'Job creation', error_message: problem })
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

  app.get<{ Querystring: Record<string, unknown> }>(`/${kind}`, async (req, reply) => {
    const query = parseListingQuery(req.query)
    if (!query.ok) return reply.code(400).send({ message: `invalid query: ${query.errors.join('; ')}` })
    const page = registry.list(kind, query.value)
    return { jobs: page.jobs, next_cursor: page.next ? encodeCursor(page.next) : null }
  })

  // The manager's hot path: auth, an id check and a lookup of an already-serialised body.
  app.get<{ Params: { id: string } }>(`/${kind}/:id`, async (req, reply) => {
    const { id } = req.params
    if (idProblem(id)) return reply.code(400).send(INVALID_ID)
    const entry = registry.get(kind, id)
    if (!entry) return reply.code(404).send()
    return sendPollingBody(reply, 200, registry.pollingBytes(entry))
  })

  app.post<{ Params: { id: string } }>(`/${kind}/:id/cancel`, async (req, reply) => {
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

  app.delete<{ Body: unknown }>(`/${kind}`, async (req, reply) => {
    if (req.body instanceof InvalidJson) return reply.code(400).send({ message: `the body is not valid JSON: ${req.body.reason}` })
    const parsed = (await bodyChecks()).parseDelete(req.body)
    if (!parsed.ok) return reply.code(400).send({ message: `invalid request: ${parsed.errors.join('; ')}` })
    switch (registry.delete(kind, parsed.value)) {
      case 'deleted':
        return reply.code(200).send()
      case 'unknown':
        return reply.code(410).send()
      case 'running':
      case 'owed': // its recovery has not run cleanup or unlock yet
        return sendPollingBody(reply, 409, registry.get(kind, parsed.value)?.body ?? '{}')
    }
  })
}
