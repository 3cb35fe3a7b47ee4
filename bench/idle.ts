// Issue 15, figures 2 (idle memory) and 5 (idle wake-ups): a fresh agent left alone. 3 s after
// its first answer, the summed VmRSS of its process tree; from then on, for BENCH_IDLE_SECONDS
// (30), the context switches (voluntary + nonvoluntary) and CPU ticks (utime + stime) of every
// thread of that tree. The Go agent, started at the same moment, is watched the same way beside.
import { goAgentPath, GO_SKIPPED, startGoAgent } from './go-agent.ts'
import { log, now, round, sleep, startAgent, type Row } from './lib.ts'
import { activityBetween, treeActivity, treeRss } from './proc.ts'

const SETTLE_MS = 3000
const IDLE_RSS_TARGET = 64e6
const SWITCHES_TARGET = 30

interface Idle {
  rssBytes: number
  processes: number
  switches: number
  ticks: number
  threads: number
  threadsStarted: number
  threadsEnded: number
}

/** Waits until 3 s after `readyAt`, samples, waits `seconds`, samples again. Sends it nothing. */
async function watch(pid: number, readyAt: number, scriptsDir: string, seconds: number): Promise<Idle> {
  await sleep(Math.max(0, readyAt + SETTLE_MS - now()))
  const rss = treeRss(pid, scriptsDir)
  const before = treeActivity(pid)
  await sleep(seconds * 1000)
  const during = activityBetween(before, treeActivity(pid))
  return {
    rssBytes: rss.bytes,
    processes: rss.counted.length,
    switches: during.switches,
    ticks: during.ticks,
    threads: during.threads,
    threadsStarted: during.started,
    threadsEnded: during.ended,
  }
}

export async function idle(): Promise<Row[]> {
  const seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 30)
  const withGo = goAgentPath() !== undefined
  const ours = await startAgent()
  const oursReady = now()
  const go = withGo ? await startGoAgent() : undefined
  let o: Idle
  let g: Idle | undefined
  try {
    ;[o, g] = await Promise.all([
      watch(ours.pid, oursReady, ours.scriptsDir, seconds),
      go ? watch(go.pid, go.readyAt, go.scriptsDir, seconds) : undefined,
    ])
  } finally {
    await ours.stop()
    await go?.stop()
  }
  log(
    `idle: ours RSS ${round(o.rssBytes / 1e6, 1)} MB (${o.processes} processes), ${o.switches} context switches and ${o.ticks} CPU ticks in ${seconds} s over ${o.threads} threads`,
  )
  if (g)
    log(
      `idle: Go agent RSS ${round(g.rssBytes / 1e6, 1)} MB, ${g.switches} context switches and ${g.ticks} CPU ticks over ${g.threads} threads`,
    )
  const ratio = (a: number, b: number | undefined) => (b === undefined || b === 0 ? null : round(a / b))
  const detail = (x: Idle | undefined) =>
    x && {
      rss_MB: round(x.rssBytes / 1e6, 1),
      processes: x.processes,
      threads: x.threads,
      threads_started: x.threadsStarted,
      threads_ended: x.threadsEnded,
      switches: x.switches,
      cpu_ticks: x.ticks,
    }
  const peerNote = g ? 'the Go agent, started with ours and watched over the same window' : GO_SKIPPED
  return [
    {
      figure: 'idle RSS, process tree, 3 s after start (MB)',
      unit: 'MB',
      ours: round(o.rssBytes / 1e6, 1),
      peer: g ? round(g.rssBytes / 1e6, 1) : null,
      ratio: g ? ratio(o.rssBytes, g.rssBytes) : round(o.rssBytes / IDLE_RSS_TARGET),
      target: '≤ 64 MB',
      pass: o.rssBytes <= IDLE_RSS_TARGET,
      detail: { ours: detail(o), go: detail(g) ?? GO_SKIPPED, peer: peerNote },
    },
    {
      figure: `idle context switches in ${seconds} s, all threads of the tree`,
      unit: '',
      ours: o.switches,
      peer: g ? g.switches : null,
      ratio: g ? ratio(o.switches, g.switches) : round(o.switches / SWITCHES_TARGET),
      target: `≤ ${round((SWITCHES_TARGET * seconds) / 30, 0)}`,
      pass: o.switches <= (SWITCHES_TARGET * seconds) / 30,
      detail: { peer: peerNote },
    },
    {
      figure: `idle CPU in ${seconds} s, utime + stime (ticks of 10 ms)`,
      unit: '',
      ours: o.ticks,
      peer: g ? g.ticks : null,
      ratio: g ? ratio(o.ticks, g.ticks) : null,
      target: '0',
      pass: o.ticks === 0,
      detail: { peer: peerNote },
    },
  ]
}
