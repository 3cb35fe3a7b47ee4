// What a route handler gets (Exchange) and gives back (Answer). Handlers never write to the
// response themselves: src/http/server.ts writes every answer, so the early-answer drain, the
// request log line and the error shape are in one place.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../log.ts'
import type { Config } from '../config.ts'
import type { JobRegistry } from '../jobs/registry.ts'
import type { RunnerDeps } from '../jobs/runner.ts'
import type { AgentMetrics } from '../metrics.ts'
import type { TlsMaterial } from './tls.ts'

export interface AppDeps {
  config: Config
  registry: JobRegistry
  log: Logger
  runner: RunnerDeps
  metrics: AgentMetrics
  /** Serve HTTPS with these certificates (src/http/tls.ts); plain HTTP without. */
  tls?: TlsMaterial | undefined
}

export const JSON_TYPE = 'application/json; charset=utf-8'

export interface Answer {
  status: number
  /** Sent as JSON (application/json). */
  json?: unknown
  /** Sent as they are, with `type` (a polling body is already serialised). */
  bytes?: Buffer | string
  /** The UTF-8 length of `bytes` when it is a string and the caller knows it. */
  length?: number
  type?: string
  headers?: Record<string, string>
}

/** An answer with a JSON body. */
export const jsonAnswer = (status: number, json: unknown, headers?: Record<string, string>): Answer =>
  headers ? { status, json, headers } : { status, json }
/** An answer without a body. */
export const emptyAnswer = (status: number): Answer => ({ status })

type LogLevel = 'info' | 'warn' | 'error' | 'debug'

/** One request, as a handler sees it. */
export class Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly deps: AppDeps
  /** monotonicMs() when the request arrived. */
  readonly started: number
  /** Path parameters by name (`id` of `/backup/:id`), decoded. */
  readonly params: Record<string, string>
  /** The body parsed as JSON, InvalidJson (src/http/body.ts), or undefined when none was sent. */
  body: unknown = undefined
  readonly #number: number
  readonly #query: string

  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    deps: AppDeps,
    params: Record<string, string>,
    query: string,
    number: number,
    started: number,
  ) {
    this.req = req
    this.res = res
    this.deps = deps
    this.started = started
    this.params = params
    this.#query = query
    this.#number = number
  }

  /** The request's id in log lines: `req-1`, `req-2`, … (base 36). */
  get reqId(): string {
    return `req-${this.#number.toString(36)}`
  }

  /** The query string's parameters; a name given twice has a list of its values. */
  query(): Record<string, string | string[]> {
    return parseQuery(this.#query)
  }

  /** A log line about this request, with its reqId. */
  log(level: LogLevel, fields: Record<string, unknown>, message: string): void {
    const log = this.deps.log
    if (log.isLevelEnabled(level)) log[level]({ reqId: this.reqId, ...fields }, message)
  }
}

/**
 * `a=1&b=2&a=3` as `{ a: ['1', '3'], b: '2' }`: `+` is a space, %-escapes are decoded (a
 * malformed one is kept as it is), a name without `=` has the value ''.
 */
export function parseQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null)
  if (query === '') return out
  for (const pair of query.split('&')) {
    if (pair === '') continue
    const equals = pair.indexOf('=')
    const name = decodeQueryPart(equals < 0 ? pair : pair.slice(0, equals))
    const value = equals < 0 ? '' : decodeQueryPart(pair.slice(equals + 1))
    const earlier = out[name]
    if (earlier === undefined) out[name] = value
    else if (Array.isArray(earlier)) earlier.push(value)
    else out[name] = [earlier, value]
  }
  return out
}

function decodeQueryPart(text: string): string {
  const spaced = text.includes('+') ? text.replaceAll('+', ' ') : text
  if (!spaced.includes('%')) return spaced
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced
  }
}
