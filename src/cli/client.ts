// The agent's HTTP API as the CLI uses it. Failures are values (CliError) with the exit code
// the command ends with.
import type { Connection } from './connection.ts'

export type Kind = 'backup' | 'restore'

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
    const { url, credentials, source } = this.#connection
    const headers: Record<string, string> = {}
    if (credentials) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) })
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message
      throw new CliError(`cannot reach the agent at ${url} (${cause}); is it running? (--url or OSB_AGENT_URL)`, EXIT.unreachable)
    }
    const text = await res.text()
    if (res.status === 401) throw new CliError(`the agent at ${url} refused the credentials from ${source}`, EXIT.unreachable)
    let parsed: unknown = undefined
    try {
      parsed = text === '' ? undefined : JSON.parse(text)
    } catch {
      parsed = text
    }
    return { status: res.status, body: parsed }
  }

  /** The polling body, looking in both kinds when none is given. */
  async poll(id: string, kind: Kind | undefined): Promise<{ kind: Kind; body: any }> {
    for (const k of kind ? [kind] : (['backup', 'restore'] as const)) {
      const reply = await this.request('GET', `/${k}/${encodeURIComponent(id)}`)
      if (reply.status === 200) return { kind: k, body: reply.body }
      if (reply.status !== 404) throw refused(reply)
    }
    throw new CliError(`no ${kind ?? 'backup or restore'} job ${id} at this agent`, EXIT.failed)
  }
}

/** A reply the command did not expect, as an error with the agent's own words. */
export function refused(reply: AgentReply): CliError {
  const b = reply.body as { error_message?: string; message?: string } | undefined
  const why = b?.error_message ?? b?.message ?? (typeof reply.body === 'string' ? reply.body : '')
  return new CliError(`the agent answered ${reply.status}${why ? `: ${why}` : ''}`, EXIT.failed)
}
