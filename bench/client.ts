// The one client the figures that compare agents use against both (ours and the Go agent): plain
// node:http on one kept-alive connection, so a poll costs the client the same whichever agent
// answers, and little of the two shared cores.
import http from 'node:http'
import { BenchError, now, sleep } from './lib.ts'

export interface Answer {
  status: number
  body: Buffer
}

/** What the figures need of an agent, ours or the Go agent. */
export interface Target {
  name: string
  url: string
  pid: number
  basic: string
  /** Its scripts_path (for telling its scripts apart from its own processes). */
  scriptsDir: string
  backupDir: string
  logTail: () => string
}

export class HttpClient {
  #agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

  request(url: string, authorization: string, method = 'GET', body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { authorization }
      if (body !== undefined) {
        headers['content-type'] = 'application/json'
        headers['content-length'] = Buffer.byteLength(body)
      }
      const req = http.request(url, { method, headers, agent: this.#agent }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  /** Drops the kept connection (before talking to a new process on a reused port). */
  reset(): void {
    this.#agent.destroy()
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  }
}

export interface TimedJob {
  /** Trigger sent → the answer of the poll that saw the job end. */
  ms: number
  status: string
  polls: number
  /** The slowest poll's round trip during the job (an event loop held up shows here). */
  longestPollMs: number
  body: any
}

/**
 * POST /backup, then GET /backup/{id} every `pollMs` (after each answer) until the job leaves
 * RUNNING. The agent must answer 201 and then 200s.
 */
export async function timeBackup(
  client: HttpClient,
  target: Target,
  body: Record<string, unknown>,
  pollMs = 2,
  timeoutMs = 120_000,
): Promise<TimedJob> {
  const id = body.id as string
  const started = now()
  const posted = await client.request(`${target.url}/backup`, target.basic, 'POST', JSON.stringify(body))
  if (posted.status !== 201)
    throw new BenchError(`${target.name}: POST /backup answered ${posted.status}: ${posted.body.toString().slice(0, 500)}`)
  let polls = 0
  let longestPollMs = 0
  for (;;) {
    const sent = now()
    const answer = await client.request(`${target.url}/backup/${id}`, target.basic)
    const at = now()
    polls++
    longestPollMs = Math.max(longestPollMs, at - sent)
    if (answer.status !== 200)
      throw new BenchError(`${target.name}: GET /backup/${id} answered ${answer.status}: ${answer.body.toString().slice(0, 500)}`)
    const polled = JSON.parse(answer.body.toString())
    if (polled.status !== 'RUNNING') return { ms: at - started, status: polled.status, polls, longestPollMs, body: polled }
    if (at - started > timeoutMs)
      throw new BenchError(`${target.name}: backup ${id} still RUNNING after ${timeoutMs} ms (state ${polled.state})`)
    await sleep(pollMs)
  }
}

/** Polls `path` every `pollMs` until it answers 200 (refused connections and other codes: again). */
export async function firstOk(
  client: HttpClient,
  url: string,
  authorization: string,
  pollMs: number,
  timeoutMs: number,
  alive: () => boolean,
): Promise<number> {
  const started = now()
  for (;;) {
    const ok = await client.request(url, authorization).then(
      (a) => a.status === 200,
      () => false,
    )
    if (ok) return now()
    if (!alive()) throw new BenchError(`the process answering ${url} exited before its first 200`)
    if (now() - started > timeoutMs) throw new BenchError(`${url} did not answer 200 within ${timeoutMs} ms`)
    await sleep(pollMs)
  }
}
