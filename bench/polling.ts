// Figure 1 of issue 8: polling throughput of GET /backup/{id} for a finished job whose every log
// field is full, against a bare node:http server answering the same bytes after the same
// Basic-auth check; then the agent's p99 while 9 jobs sleep in their backup stage and one
// uploads 1 GiB (a new upload starts whenever the last one ends, so the load lasts the window).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BenchError, freePort, GiB, jobId, log, median, NODE, ROOT, round, runJobToEnd, s3Destination, sleep, sourceFile, startAgent, stopChild, trigger, triggerBody, type Agent, type Row } from './lib.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'
import { wrk } from './wrk.ts'

const LOG_BYTES = 65536 // script_log_max_bytes, the default

/** Every stage prints more than script_log_max_bytes to stdout and to stderr when mode=logs. */
function scripts(): Record<string, string> {
  const noisy = (stage: string) =>
    `if [ "$mode" = logs ]; then yes 'pg_dump: dumping contents of table "public.orders" (${stage})' | head -c ${LOG_BYTES + 4096}; yes 'WARNING: ${stage} is chatty on stderr' | head -c ${LOG_BYTES + 4096} >&2; fi`
  const stages = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
  const out: Record<string, string> = {}
  for (const stage of stages) out[stage] = noisy(stage)
  out.backup += `\ncase "$mode" in sleep) sleep 600 ;; big) ln "$src" "$5.bin" ;; esac`
  return out
}

interface EventLoopLag {
  p99Ms: number
  maxMs: number
}

/**
 * The agent's event-loop delay since the last scrape, from its own /metrics (prom-client's
 * monitorEventLoopDelay histogram, reset at every scrape; 10 ms resolution).
 */
async function eventLoopLag(agent: Agent): Promise<EventLoopLag> {
  const res = await agent.request('GET', '/metrics')
  if (res.status !== 200) throw new BenchError(`GET /metrics answered ${res.status}`)
  const gauge = (name: string) => {
    const m = new RegExp(`^osb_backup_agent_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(res.text)
    if (!m) throw new BenchError(`no eventloop_lag_${name} in /metrics`)
    return round(Number(m[1]) * 1000, 1)
  }
  return { p99Ms: gauge('p99'), maxMs: gauge('max') }
}

async function startBare(bodyFile: string, agent: Agent): Promise<{ url: string; stop: () => Promise<void> }> {
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

export async function polling(lab: Record<string, string>, options: { seconds: number; rounds: number; load: boolean; plain: boolean }): Promise<Row[]> {
  const rows: Row[] = []
  const agent = await startAgent({ scripts: scripts() })
  let bare: Awaited<ReturnType<typeof startBare>> | undefined
  const sleepers: string[] = []
  try {
    const id = jobId()
    await runJobToEnd(agent, 'backup', triggerBody(id, s3Destination(lab, BUCKET, { skipStorage: true }), { mode: 'logs' }))
    const res = await fetch(`${agent.url}/backup/${id}`, { headers: { authorization: agent.basic } })
    const bytes = Buffer.from(await res.arrayBuffer())
    const polled = JSON.parse(bytes.toString())
    const logFields = Object.keys(polled).filter((k) => k.endsWith('_log') || k.endsWith('_errorlog'))
    for (const field of logFields) {
      if (polled[field].length < LOG_BYTES) throw new BenchError(`${field} holds ${polled[field].length} bytes, not ${LOG_BYTES}: the scripts did not fill it`)
    }
    log(`polling body: ${bytes.length} bytes, ${logFields.length} full log fields`)
    const bodyFile = join(agent.root, 'polling-body.json')
    writeFileSync(bodyFile, bytes)
    const agentUrl = `${agent.url}/backup/${id}`

    if (options.plain) {
      bare = await startBare(bodyFile, agent)
      const check = await fetch(bare.url, { headers: { authorization: agent.basic } })
      if (!Buffer.from(await check.arrayBuffer()).equals(bytes)) throw new BenchError('the bare server does not answer the same bytes')
      const ours: { rps: number; p99Ms: number }[] = []
      const peer: { rps: number; p99Ms: number }[] = []
      for (let r = 1; r <= options.rounds; r++) {
        peer.push(await wrk(bare.url, agent.basic, { seconds: options.seconds }))
        log(`polling round ${r}: bare ${round(peer.at(-1)!.rps, 0)} req/s, p99 ${peer.at(-1)!.p99Ms} ms`)
        ours.push(await wrk(agentUrl, agent.basic, { seconds: options.seconds }))
        log(`polling round ${r}: agent ${round(ours.at(-1)!.rps, 0)} req/s, p99 ${ours.at(-1)!.p99Ms} ms`)
      }
      const oursRps = median(ours.map((o) => o.rps))
      const peerRps = median(peer.map((o) => o.rps))
      rows.push({
        figure: 'polling throughput (req/s, 4 conn)',
        unit: 'req/s',
        ours: round(oursRps, 0),
        peer: round(peerRps, 0),
        ratio: round(oursRps / peerRps),
        target: '≥ 0.8× bare node:http',
        pass: oursRps / peerRps >= 0.8,
        detail: { body_bytes: bytes.length, agent_rounds: ours, bare_rounds: peer },
      })
      rows.push({
        figure: 'polling p99 latency (ms, idle)',
        unit: 'ms',
        ours: round(median(ours.map((o) => o.p99Ms))),
        peer: round(median(peer.map((o) => o.p99Ms))),
        ratio: round(median(ours.map((o) => o.p99Ms)) / median(peer.map((o) => o.p99Ms))),
        target: 'reported',
        pass: true,
      })
      await bare.stop()
      bare = undefined
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
      const results: { rps: number; p99Ms: number; loopLag: EventLoopLag }[] = []
      const bareResults: { rps: number; p99Ms: number }[] = []
      bare = await startBare(bodyFile, agent)
      let uploads = 0
      for (let r = 1; r <= options.rounds; r++) {
        // One 1 GiB upload at a time for the whole window: the next starts when the last ends.
        let stopLoad = false
        let uploading = jobId()
        await trigger(agent, 'backup', triggerBody(uploading, s3Destination(lab, BUCKET), { mode: 'big', src }))
        await agent.waitForState('backup', uploading, 'upload')
        const loop = (async () => {
          while (!stopLoad) {
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
        const result = await wrk(agentUrl, agent.basic, { seconds: options.seconds })
        const loopLag = await eventLoopLag(agent)
        // The platform under the same load: the bare server answers while the agent keeps uploading.
        const peer = await wrk(bare.url, agent.basic, { seconds: options.seconds })
        stopLoad = true
        await loop
        results.push({ ...result, loopLag })
        bareResults.push(peer)
        log(`polling under load round ${r}: agent ${round(result.rps, 0)} req/s, p99 ${result.p99Ms} ms (its event loop: p99 delay ${loopLag.p99Ms} ms, max ${loopLag.maxMs} ms); bare server ${round(peer.rps, 0)} req/s, p99 ${peer.p99Ms} ms`)
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
        target: '≤ 20 ms',
        pass: p99 <= 20,
        detail: { rounds: results, bare_rounds: bareResults, peer: 'the bare node:http server, polled while the agent keeps uploading', uploads_completed: uploads },
      })
      for (const s of sleepers) await agent.request('POST', `/backup/${s}/cancel`)
      for (const s of sleepers) await agent.waitFor('backup', s, { pollMs: 100, timeoutMs: 60_000 })
      sleepers.length = 0
      await emptyBucket(lab)
    }
  } finally {
    await bare?.stop()
    for (const s of sleepers) await agent.request('POST', `/backup/${s}/cancel`).catch(() => {})
    await sleep(0)
    await agent.stop()
  }
  return rows
}
