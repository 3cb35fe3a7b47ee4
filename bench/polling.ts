// Issue 15, figure 1 (and issue 8's polling figures): polling throughput of GET /backup/{id}
// with `wrk -t1 -c4`, the agent beside a bare node:http server answering the same bytes (and the
// Go agent on its own job), in interleaved rounds; for a RUNNING job (~1 KB body: its backup
// script sleeps) and for a finished job whose every log field is full (0.68 MB). Then the agent's
// p99 while 9 jobs sleep in their backup stage and one uploads 1 GiB (a new upload starts
// whenever the last one ends, so the load lasts the window).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HttpClient } from './client.ts'
import { goAgentPath, GO_SKIPPED, startGoAgent, type GoAgent } from './go-agent.ts'
import {
  BenchError,
  freePort,
  GiB,
  jobId,
  log,
  median,
  NODE,
  ROOT,
  round,
  runJobToEnd,
  s3Destination,
  sleep,
  SOURCE_BACK,
  SOURCE_IN,
  sourceFile,
  spread,
  startAgent,
  stopChild,
  trigger,
  triggerBody,
  type Agent,
  type Row,
} from './lib.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'
import { wrk, type WrkResult } from './wrk.ts'

const LOG_BYTES = 65536 // script_log_max_bytes, the default

/** Every stage prints more than script_log_max_bytes to stdout and to stderr when mode=logs. */
function scripts(): Record<string, string> {
  const noisy = (stage: string) =>
    `if [ "$mode" = logs ]; then yes 'pg_dump: dumping contents of table "public.orders" (${stage})' | head -c ${LOG_BYTES + 4096}; yes 'WARNING: ${stage} is chatty on stderr' | head -c ${LOG_BYTES + 4096} >&2; fi`
  const stages = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
  const out: Record<string, string> = {}
  for (const stage of stages) out[stage] = noisy(stage)
  out.backup += `\ncase "$mode" in sleep) sleep 600 ;; big) ${SOURCE_IN} ;; esac`
  out['backup-cleanup'] += `\n${SOURCE_BACK}`
  return out
}

interface EventLoopLag {
  p99Ms: number
  maxMs: number
}

/**
 * The agent's event-loop delay since the last scrape, from its own /metrics (the
 * `nodejs_eventloop_lag_{p99,max}_seconds` gauges), when it exports them; undefined otherwise
 * (the figure's p99 does not depend on it).
 */
async function eventLoopLag(agent: Agent): Promise<EventLoopLag | undefined> {
  const res = await agent.request('GET', '/metrics')
  if (res.status !== 200) throw new BenchError(`GET /metrics answered ${res.status}`)
  const gauge = (name: string) => {
    const m = new RegExp(`^osb_backup_agent_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(res.text)
    return m ? round(Number(m[1]) * 1000, 1) : undefined
  }
  const p99Ms = gauge('p99')
  const maxMs = gauge('max')
  return p99Ms === undefined || maxMs === undefined ? undefined : { p99Ms, maxMs }
}

async function startBare(bodyFile: string, agent: Agent): Promise<{ url: string; stop: () => Promise<void> }> {
  // The server imports nothing from src/ (it is measured as the platform's limit).
  const port = await freePort()
  const child = spawn(NODE, [join(ROOT, 'bench/bare-server.ts')], {
    env: { PATH: process.env.PATH, PORT: String(port), BODY_FILE: bodyFile, AUTH_USER: agent.username, AUTH_PASSWORD: agent.password },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve())
    child.once('exit', (code) => reject(new BenchError(`bare server exited with ${code}`)))
  })
  return { url: `http://127.0.0.1:${port}/backup/x`, stop: () => stopChild(child) }
}

interface Polled {
  name: 'bare' | 'ours' | 'go'
  url: string
  authorization: string
}

/**
 * `rounds` interleaved rounds of `wrk -t1 -c4` on each target (the order rotates every round,
 * the bare server first in the first), against a bare server answering `bytes`.
 */
async function versusBare(
  agent: Agent,
  bytes: Buffer,
  agentUrl: string,
  seconds: number,
  rounds: number,
  label: string,
  go?: { url: string; authorization: string },
): Promise<Record<Polled['name'], WrkResult[]>> {
  const bodyFile = join(agent.root, `polling-body-${label.replace(/\W+/g, '-')}.json`)
  writeFileSync(bodyFile, bytes)
  const bare = await startBare(bodyFile, agent)
  const results: Record<Polled['name'], WrkResult[]> = { bare: [], ours: [], go: [] }
  try {
    const check = await fetch(bare.url, { headers: { authorization: agent.basic } })
    if (!Buffer.from(await check.arrayBuffer()).equals(bytes)) throw new BenchError('the bare server does not answer the same bytes')
    const targets: Polled[] = [
      { name: 'bare', url: bare.url, authorization: agent.basic },
      { name: 'ours', url: agentUrl, authorization: agent.basic },
    ]
    if (go) targets.push({ name: 'go', ...go })
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < targets.length; k++) {
        const target = targets[(k + r) % targets.length] as Polled
        const result = await wrk(target.url, target.authorization, { seconds, threads: 1 })
        results[target.name].push(result)
        log(`polling ${label} round ${r + 1}: ${target.name} ${round(result.rps, 0)} req/s, p99 ${result.p99Ms} ms`)
      }
    }
  } finally {
    await bare.stop()
  }
  return results
}

/** Per round, a's req/s over b's. */
const roundRatios = (a: WrkResult[], b: WrkResult[]) => a.map((x, i) => x.rps / (b[i] as WrkResult).rps)
const rounded = (results: WrkResult[]) => results.map((r) => ({ rps: round(r.rps, 0), p50Ms: r.p50Ms, p99Ms: r.p99Ms }))

/** A job of the Go agent that sleeps in its backup stage, and its polling body. */
async function goRunningJob(): Promise<{ go: GoAgent; url: string; bytes: Buffer }> {
  const go = await startGoAgent({ scripts: { backup: 'sleep 600' } })
  const client = new HttpClient()
  try {
    const id = jobId()
    const posted = await client.request(
      `${go.url}/backup`,
      go.basic,
      'POST',
      JSON.stringify(
        triggerBody(
          id,
          s3Destination({ S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'us-east-1', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' }, BUCKET, {
            skipStorage: true,
          }),
          {},
          'backup',
          'none',
        ),
      ),
    )
    if (posted.status !== 201)
      throw new BenchError(`the Go agent answered ${posted.status} to POST /backup: ${posted.body.toString().slice(0, 300)}`)
    const url = `${go.url}/backup/${id}`
    for (let tries = 0; ; tries++) {
      const answer = await client.request(url, go.basic)
      const body = JSON.parse(answer.body.toString())
      if (body.status === 'RUNNING' && body.state === 'backup') return { go, url, bytes: answer.body }
      if (body.status !== 'RUNNING' || tries > 500)
        throw new BenchError(`the Go agent's sleeping job is ${body.status} in ${body.state}: ${body.error_message ?? ''}`)
      await sleep(20)
    }
  } catch (error) {
    await go.stop()
    throw error
  } finally {
    client.reset()
  }
}

export async function polling(
  lab: Record<string, string>,
  options: { seconds: number; rounds: number; load: boolean; plain: boolean },
): Promise<Row[]> {
  const rows: Row[] = []
  const agent = await startAgent({ scripts: scripts() })
  let bare: Awaited<ReturnType<typeof startBare>> | undefined
  let go: GoAgent | undefined
  const sleepers: string[] = []
  try {
    const id = jobId()
    await runJobToEnd(agent, 'backup', triggerBody(id, s3Destination(lab, BUCKET, { skipStorage: true }), { mode: 'logs' }))
    const res = await fetch(`${agent.url}/backup/${id}`, { headers: { authorization: agent.basic } })
    const bytes = Buffer.from(await res.arrayBuffer())
    const polled = JSON.parse(bytes.toString())
    const logFields = Object.keys(polled).filter((k) => k.endsWith('_log') || k.endsWith('_errorlog'))
    for (const field of logFields) {
      if (polled[field].length < LOG_BYTES)
        throw new BenchError(`${field} holds ${polled[field].length} bytes, not ${LOG_BYTES}: the scripts did not fill it`)
    }
    log(`polling body: ${bytes.length} bytes, ${logFields.length} full log fields`)
    const bodyFile = join(agent.root, 'polling-body.json')
    writeFileSync(bodyFile, bytes)
    const agentUrl = `${agent.url}/backup/${id}`

    if (options.plain) {
      // A RUNNING job: the body the manager polls every 5 s while a backup runs.
      const runningId = jobId()
      await trigger(
        agent,
        'backup',
        triggerBody(runningId, s3Destination(lab, BUCKET, { skipStorage: true }), { mode: 'sleep' }, 'backup', 'none'),
      )
      sleepers.push(runningId)
      await agent.waitForState('backup', runningId, 'backup')
      const runningUrl = `${agent.url}/backup/${runningId}`
      const small = Buffer.from(await (await fetch(runningUrl, { headers: { authorization: agent.basic } })).arrayBuffer())
      if (JSON.parse(small.toString()).status !== 'RUNNING') throw new BenchError('the sleeping job is not RUNNING')
      let goBytes: Buffer | undefined
      let goUrl = ''
      if (goAgentPath()) {
        const running = await goRunningJob()
        go = running.go
        goBytes = running.bytes
        goUrl = running.url
        log(`polling: Go agent's running job body ${goBytes.length} bytes`)
      }
      log(`polling running job body: ${small.length} bytes`)
      const runningResults = await versusBare(
        agent,
        small,
        runningUrl,
        options.seconds,
        options.rounds,
        'running job',
        go && { url: goUrl, authorization: go.basic },
      )
      await agent.request('POST', `/backup/${runningId}/cancel`)
      await agent.waitFor('backup', runningId, { pollMs: 100, timeoutMs: 60_000 })
      sleepers.splice(sleepers.indexOf(runningId), 1)
      await go?.stop()
      go = undefined
      const fullResults = await versusBare(agent, bytes, agentUrl, options.seconds, options.rounds, 'full logs')

      const row = (figure: string, results: Record<Polled['name'], WrkResult[]>, target: number, bodyBytes: number): Row => {
        const ratios = roundRatios(results.ours, results.bare)
        const ratio = median(ratios)
        return {
          figure,
          unit: 'req/s',
          ours: round(median(results.ours.map((o) => o.rps)), 0),
          peer: round(median(results.bare.map((o) => o.rps)), 0),
          ratio: round(ratio),
          spread: spread(ratios),
          target: `≥ ${target}× bare node:http`,
          pass: ratio >= target,
          detail: {
            body_bytes: bodyBytes,
            wrk: `-t1 -c4 -d${options.seconds}s`,
            ratio: "median of the rounds' ratios (agent / bare in the same round)",
            agent_rounds: rounded(results.ours),
            bare_rounds: rounded(results.bare),
          },
        }
      }
      rows.push(row('polling a RUNNING job, ~1 KB body (req/s, wrk -t1 -c4)', runningResults, 0.85, small.length))
      if (goBytes) {
        const ratios = roundRatios(runningResults.ours, runningResults.go)
        rows.push({
          figure: 'polling a RUNNING job vs the Go agent on its own (req/s)',
          unit: 'req/s',
          ours: round(median(runningResults.ours.map((o) => o.rps)), 0),
          peer: round(median(runningResults.go.map((o) => o.rps)), 0),
          ratio: round(median(ratios)),
          spread: spread(ratios),
          target: 'reported',
          pass: true,
          detail: {
            go_body_bytes: goBytes.length,
            go_rounds: rounded(runningResults.go),
            go_vs_bare: round(median(roundRatios(runningResults.go, runningResults.bare))),
          },
        })
      } else {
        rows.push({
          figure: 'polling a RUNNING job vs the Go agent on its own (req/s)',
          unit: 'req/s',
          ours: round(median(runningResults.ours.map((o) => o.rps)), 0),
          peer: null,
          ratio: null,
          target: 'reported',
          pass: true,
          skipped: true,
          detail: { note: GO_SKIPPED },
        })
      }
      rows.push(row('polling a finished job, 0.68 MB body (req/s, wrk -t1 -c4)', fullResults, 0.9, bytes.length))
      const p99 = (results: WrkResult[]) => median(results.map((o) => o.p99Ms))
      const p99Row = (figure: string, results: Record<Polled['name'], WrkResult[]>, detail?: Record<string, unknown>): Row => ({
        figure,
        unit: 'ms',
        ours: round(p99(results.ours)),
        peer: round(p99(results.bare)),
        ratio: round(p99(results.ours) / p99(results.bare)),
        target: 'reported',
        pass: true,
        detail,
      })
      rows.push(
        p99Row(
          'polling p99 latency, RUNNING job (ms, idle)',
          runningResults,
          goBytes ? { go_p99_ms: round(p99(runningResults.go)) } : undefined,
        ),
      )
      rows.push(p99Row('polling p99 latency, finished job 0.68 MB (ms, idle)', fullResults))
    }

    if (options.load) {
      await ensureBucket(lab)
      const src = sourceFile(GiB)
      for (let i = 0; i < 9; i++) {
        const sleeper = jobId()
        await trigger(agent, 'backup', triggerBody(sleeper, s3Destination(lab, BUCKET, { skipStorage: true }), { mode: 'sleep' }))
        sleepers.push(sleeper)
      }
      for (const s of sleepers) await agent.waitForState('backup', s, 'backup')
      const results: { rps: number; p99Ms: number; loopLag: EventLoopLag | undefined }[] = []
      const bareResults: { rps: number; p99Ms: number }[] = []
      bare = await startBare(bodyFile, agent)
      let uploads = 0
      for (let r = 1; r <= options.rounds; r++) {
        // One 1 GiB upload at a time for the whole window: the next starts when the last ends.
        let stopLoad = false
        let uploading = jobId()
        await trigger(agent, 'backup', triggerBody(uploading, s3Destination(lab, BUCKET), { mode: 'big', src }))
        await agent.waitForState('backup', uploading, 'upload')
        // It returns only once the upload under way has ended (a stop that came while the next
        // was being triggered left that one running, and the next round found no free job slot).
        const loop = (async () => {
          for (;;) {
            const { body } = await agent.waitFor('backup', uploading, { pollMs: 200 })
            if (body.status !== 'SUCCEEDED') throw new BenchError(`upload under load ${body.status}: ${body.error_message}`)
            uploads++
            if (stopLoad) return
            uploading = jobId()
            await trigger(agent, 'backup', triggerBody(uploading, s3Destination(lab, BUCKET), { mode: 'big', src }))
          }
        })()
        loop.catch(() => {}) // a failed upload fails this figure at `await loop`, not the whole run
        await eventLoopLag(agent) // resets the agent's event-loop delay histogram
        // Two wrk threads, as this scenario has always been measured (its history stays comparable).
        const result = await wrk(agentUrl, agent.basic, { seconds: options.seconds, threads: 2 })
        const loopLag = await eventLoopLag(agent)
        // The platform under the same load: the bare server answers while the agent keeps uploading.
        const peer = await wrk(bare.url, agent.basic, { seconds: options.seconds, threads: 2 })
        stopLoad = true
        await loop
        results.push({ ...result, loopLag })
        bareResults.push(peer)
        log(
          `polling under load round ${r}: agent ${round(result.rps, 0)} req/s, p99 ${result.p99Ms} ms${loopLag ? ` (its event loop: p99 delay ${loopLag.p99Ms} ms, max ${loopLag.maxMs} ms)` : ''}; bare server ${round(peer.rps, 0)} req/s, p99 ${peer.p99Ms} ms`,
        )
      }
      await bare.stop()
      bare = undefined
      const p99 = round(median(results.map((r) => r.p99Ms)))
      const bareP99 = round(median(bareResults.map((r) => r.p99Ms)))
      rows.push({
        figure: 'polling p99 under load (ms: 9 sleeping jobs + 1 GiB upload)',
        unit: 'ms',
        ours: p99,
        peer: bareP99,
        ratio: round(p99 / bareP99),
        spread: spread(results.map((r) => r.p99Ms)),
        target: '≤ 20 ms',
        pass: p99 <= 20,
        detail: {
          rounds: results,
          bare_rounds: bareResults,
          wrk: `-t2 -c4 -d${options.seconds}s`,
          spread: "of the agent's p99 over the rounds",
          peer: 'the bare node:http server, polled while the agent keeps uploading',
          uploads_completed: uploads,
        },
      })
      for (const s of sleepers) await agent.request('POST', `/backup/${s}/cancel`)
      for (const s of sleepers) await agent.waitFor('backup', s, { pollMs: 100, timeoutMs: 60_000 })
      sleepers.length = 0
      await emptyBucket(lab)
    }
  } finally {
    await bare?.stop()
    await go?.stop()
    for (const s of sleepers) await agent.request('POST', `/backup/${s}/cancel`).catch(() => {})
    await sleep(0)
    await agent.stop()
  }
  return rows
}
