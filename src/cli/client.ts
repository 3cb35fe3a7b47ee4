// The agent's HTTP API as the CLI uses it. Failures are values (CliError) with the exit code
// the command ends with.
import { isSecretParameter, JOB_KINDS, type JobKind } from '../jobs/request.ts'
import { maskSecrets } from '../scripts/capture.ts'
import type { Connection } from './connection.ts'

/** backup, restore or verify: the agent's own list, so a kind it adds is one the CLI knows. */
export type Kind = JobKind
export const KINDS: readonly Kind[] = JOB_KINDS

/** Exit codes: 1 the job or the request failed, 2 wrong usage, 3 the agent cannot be reached or refused the login. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const

export class CliError extends Error {
  override name = 'CliError'
  readonly exitCode: number
  constructor(message: string, exitCode: number) {
    super(message)
    this.exitCode = exitCode
  }
}

export interface AgentReply {
  status: number
  body: any
}

export class AgentClient {
  readonly #connection: Connection
  constructor(connection: Connection) {
    this.#connection = connection
  }

  async request(method: string, path: string, body?: unknown): Promise<AgentReply> {
    const { credentials, source } = this.#connection
    const url = withoutUserinfo(this.#connection.url)
    if (url !== this.#connection.url)
      throw new CliError(
        `the agent URL ${url} must not hold a user or password: use --username/--password or the credentials file`,
        EXIT.usage,
      )
    const headers: Record<string, string> = {}
    if (credentials) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      })
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message
      throw new CliError(`cannot reach the agent at ${url} (${cause}); is it running? (--url or OSB_AGENT_URL)`, EXIT.unreachable)
    }
    const text = await res.text()
    if (res.status === 401) throw new CliError(`the agent at ${url} refused the credentials from ${source}`, EXIT.unreachable)
    let parsed: unknown
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = text
    }
    // Masked before anything is shown: what answers at --url may not be the agent, and a server
    // (or proxy) that echoes the request would print the passwords it was sent.
    parsed = masked(parsed, sentSecrets(credentials?.password, body), 0)
    return { status: res.status, body: parsed }
  }

  /** The polling body, looking in every kind when none is given. */
  async poll(id: string, kind: Kind | undefined): Promise<{ kind: Kind; body: any }> {
    for (const k of kind ? [kind] : KINDS) {
      const reply = await this.request('GET', `/${k}/${encodeURIComponent(id)}`)
      if (reply.status === 200) return { kind: k, body: reply.body }
      if (reply.status !== 404) throw refused(reply)
    }
    throw new CliError(`no ${kind ?? KINDS.join(' or ')} job ${id} at this agent`, EXIT.failed)
  }
}

/** A URL as it may be printed: without user and password. */
function withoutUserinfo(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.username === '' && parsed.password === '') return url
    parsed.username = ''
    parsed.password = ''
    return parsed.href.replace(/\/$/, '')
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//')
  }
}

/** Every string in a reply, masked (strings only: a masked number would not be one). */
function masked(value: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof value === 'string') return maskSecrets(value, secrets)
  if (typeof value !== 'object' || value === null || depth > 64) return value
  if (Array.isArray(value)) return value.map((v) => masked(v, secrets, depth + 1))
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [maskSecrets(k, secrets), masked(v, secrets, depth + 1)]))
}

/** The secrets a request carried: the login password and those of a trigger body. */
function sentSecrets(password: string | undefined, body: unknown): string[] {
  const out = password ? [password] : []
  const b = body as Record<string, any> | undefined
  if (typeof b !== 'object' || b === null) return out
  const strings = (...values: unknown[]) => {
    for (const v of values) if (typeof v === 'string' || typeof v === 'number') out.push(String(v))
  }
  strings(b.encryption_key, b.destination?.authSecret, b.destination?.password)
  for (const database of [b.backup, b.restore]) {
    strings(database?.password)
    const parameters = Array.isArray(database?.parameters) ? database.parameters : [database?.parameters]
    for (const entry of parameters) {
      if (typeof entry !== 'object' || entry === null) continue
      for (const [name, value] of Object.entries(entry)) if (isSecretParameter(name)) strings(value)
    }
  }
  return out.filter((s) => s !== '' && s !== 'none')
}

/** A reply the command did not expect, as an error with the agent's own words. */
export function refused(reply: AgentReply): CliError {
  const b = reply.body as { error_message?: string; message?: string } | undefined
  const why = b?.error_message ?? b?.message ?? (typeof reply.body === 'string' ? reply.body : '')
  return new CliError(`the agent answered ${reply.status}${why ? `: ${why}` : ''}`, EXIT.failed)
}
