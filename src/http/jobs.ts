// The job handlers of SPEC §2, the same for both kinds: POST /backup or PUT /restore starts a
// job, GET /<kind>/{id} polls it, GET /<kind> lists, POST /<kind>/{id}/cancel cancels, DELETE
// /<kind> forgets a finished one. Their methods, paths and descriptions are in src/http/routes.ts.
import { newJob } from '../jobs/job.ts'
import { BodyUnreadable, type JobEntry, type JobRegistry, type StartRefusal } from '../jobs/registry.ts'
import type { JobKind } from '../jobs/request.ts'
import { logFields } from '../jobs/stage-names.ts'
import { InvalidJson } from './body.ts'
import { emptyAnswer, jsonAnswer, JSON_TYPE, type Answer, type Exchange } from './exchange.ts'
import { idProblem, triggerId } from './ids.ts'
import { encodeCursor, parseListingQuery } from './listing.ts'

const INVALID_ID = jsonAnswer(400, { message: 'invalid id: 1-128 characters of A-Z a-z 0-9 . _ - and not . or ..' })
const NOT_FOUND = emptyAnswer(404)

/**
 * The body checks, loaded on the first trigger or DELETE: start-up and polls never wait for
 * them, and an agent that only answers polls never loads them.
 */
let checks: Promise<typeof import('./trigger.ts')> | undefined
const bodyChecks = () => (checks ??= import('./trigger.ts'))

/**
 * The job runner and everything it runs (scripts, storage, streams), loaded by the first trigger:
 * an agent that only answers polls never loads it (~2.5 MB of RSS; docs/PERFORMANCE.md).
 */
let runner: Promise<typeof import('../jobs/runner.ts')> | undefined
const jobRunner = () => (runner ??= import('../jobs/runner.ts'))

/** An answer with a polling body (already serialised by the registry). */
const pollingAnswer = (status: number, body: string | Buffer): Answer => ({ status, bytes: body, type: JSON_TYPE })

/** What a finished job's poll answers when its body is neither in memory nor readable from the store. */
const unreadableAnswer = (error: BodyUnreadable): Answer =>
  jsonAnswer(503, { message: `${error.message}; try again later` }, { 'retry-after': '30' })

/** The answer with a job's polling body (409s: the job that is there), or 503 when it cannot be read. */
function jobAnswer(status: number, registry: JobRegistry, entry: JobEntry | undefined): Answer {
  if (entry === undefined) return pollingAnswer(status, '{}')
  try {
    return pollingAnswer(status, registry.pollingBody(entry))
  } catch (error) {
    if (error instanceof BodyUnreadable) return unreadableAnswer(error)
    throw error
  }
}

/**
 * Polling bodies up to this size go out as the registry's string, larger ones as its cached
 * bytes. Node sends a small string answer and its head in one write from a stack buffer (16 KiB),
 * a Buffer in a writev of two parts: ~1 µs of the ~13 µs of CPU a poll costs (a bare node:http
 * server under wrk: 12.9 µs per request with a Buffer, 12.0 with a string). A large string would
 * be encoded again on every poll.
 */
const STRING_BODY_MAX_BYTES = 16 * 1024

export type Handler = (x: Exchange) => Answer | Promise<Answer>

export interface JobHandlers {
  trigger: Handler
  list: Handler
  poll: Handler
  cancel: Handler
  forget: Handler
}

export function jobHandlers(kind: JobKind): JobHandlers {
  const rejected = rejectedAnswer(kind)
  return {
    trigger: triggerHandler(kind, rejected),
    list: listHandler(kind),
    poll: pollHandler(kind),
    cancel: cancelHandler(kind),
    forget: forgetHandler(kind),
  }
}

type Rejected = (state: string, errorMessage: string) => Answer

/** A polling-shaped body for a trigger that registered nothing. */
function rejectedAnswer(kind: JobKind): Rejected {
  const emptyLogs = Object.fromEntries(logFields(kind).map((f) => [f, '']))
  return (state, errorMessage) =>
    jsonAnswer(400, {
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
}

function triggerHandler(kind: JobKind, rejected: Rejected): Handler {
  return async (x) => {
    const { registry, config } = x.deps
    if (x.body instanceof InvalidJson) return rejected('Body Deserialization', `the body is not valid JSON: ${x.body.reason}`)
    // A known id answers 409 with that job, before any other check (as the old agent did).
    const id = triggerId(x.body)
    const existing = id === undefined ? undefined : registry.get(kind, id)
    if (existing) return jobAnswer(409, registry, existing)

    const parsed = (await bodyChecks()).parseTrigger(kind, x.body, config)
    if (!parsed.ok) return rejected('Body Deserialization', `invalid request: ${parsed.errors.join('; ')}`)

    // loaded before the job is registered: start and run stay one synchronous step
    const { runJob } = await jobRunner()
    const job = newJob(parsed.value, logFields(kind))
    const entry = registry.start(job)
    if (typeof entry === 'string') return notStartedAnswer(kind, entry, x, job.id)
    x.log(
      'info',
      { job: job.id, kind, type: job.request.destination.type, skipStorage: job.request.destination.skipStorage },
      'job started',
    )
    void runJob(job, entry.live.cancel.signal, x.deps.runner)
    return emptyAnswer(201)
  }
}

/** Why the registry did not start the job: the job with that id, or a refusal to try again later. */
function notStartedAnswer(kind: JobKind, refusal: StartRefusal, x: Exchange, id: string): Answer {
  const { registry } = x.deps
  switch (refusal) {
    case 'exists':
      return jobAnswer(409, registry, registry.get(kind, id))
    case 'closing':
      return jsonAnswer(
        503,
        { message: `${kind} not started`, state: 'Job creation', error_message: 'the agent is shutting down; try again when it is back' },
        { 'retry-after': '30' },
      )
    case 'store': {
      const problem = registry.storeProblem ?? 'the job store could not be written'
      return jsonAnswer(
        503,
        { message: `${kind} not started: ${problem}; try again when it can be written`, state: 'Job creation', error_message: problem },
        { 'retry-after': '30' },
      )
    }
    case 'full':
      return jsonAnswer(429, {
        message: `${kind} not started`,
        state: 'Job creation',
        error_message: `${registry.running} jobs are running, the most max_job_number allows; try again when one has finished`,
      })
  }
}

function listHandler(kind: JobKind): Handler {
  return (x) => {
    const query = parseListingQuery(x.query())
    if (!query.ok) return jsonAnswer(400, { message: `invalid query: ${query.errors.join('; ')}` })
    const page = x.deps.registry.list(kind, query.value)
    return jsonAnswer(200, { jobs: page.jobs, next_cursor: page.next ? encodeCursor(page.next) : null })
  }
}

// The manager's hot path: an id check and a lookup of an already-serialised body.
function pollHandler(kind: JobKind): Handler {
  return (x) => {
    const id = x.params.id
    if (idProblem(id)) return INVALID_ID
    const { registry } = x.deps
    const entry = registry.get(kind, id as string)
    if (!entry) return NOT_FOUND
    let body: string
    let bytes: Buffer
    try {
      body = registry.pollingBody(entry) // a finished job not polled lately: read from the store
      bytes = registry.pollingBytes(entry) // of that body
    } catch (error) {
      if (error instanceof BodyUnreadable) return unreadableAnswer(error)
      throw error
    }
    if (bytes.length > STRING_BODY_MAX_BYTES) return pollingAnswer(200, bytes)
    return { status: 200, bytes: body, length: bytes.length, type: JSON_TYPE }
  }
}

function cancelHandler(kind: JobKind): Handler {
  return (x) => {
    const id = x.params.id as string
    if (idProblem(id)) return INVALID_ID
    const { registry } = x.deps
    switch (registry.cancel(kind, id)) {
      case 'cancelled':
        x.log('info', { job: id, kind }, 'job cancelled')
        return jsonAnswer(202, { message: `${kind} ${id} is being cancelled; cleanup and unlock still run` })
      case 'not running':
        return jobAnswer(409, registry, registry.get(kind, id))
      case 'unknown':
        return jsonAnswer(404, { message: `no ${kind} job ${id}` })
    }
  }
}

function forgetHandler(kind: JobKind): Handler {
  return async (x) => {
    if (x.body instanceof InvalidJson) return jsonAnswer(400, { message: `the body is not valid JSON: ${x.body.reason}` })
    const parsed = (await bodyChecks()).parseDelete(x.body)
    if (!parsed.ok) return jsonAnswer(400, { message: `invalid request: ${parsed.errors.join('; ')}` })
    const { registry } = x.deps
    switch (registry.delete(kind, parsed.value)) {
      case 'deleted':
        return emptyAnswer(200)
      case 'unknown':
        return emptyAnswer(410)
      case 'running':
      case 'owed': // its recovery has not run cleanup or unlock yet
        return jobAnswer(409, registry, registry.get(kind, parsed.value))
    }
  }
}
