// Runs Debian's wrk and reads its summary. One thread by default (`wrk -t1 -c4`): on two cores a
// second wrk thread takes CPU from the server it measures.
import { BenchError, runOk } from './lib.ts'

export interface WrkResult {
  rps: number
  p50Ms: number
  p99Ms: number
  requests: number
}

const toMs = (value: string, unit: string) => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 } as Record<string, number>)[unit]!

export async function wrk(
  url: string,
  authorization: string,
  options: { connections?: number; seconds?: number; threads?: number } = {},
): Promise<WrkResult> {
  const { connections = 4, seconds = 10, threads = 1 } = options
  const { stdout } = await runOk(
    '/usr/bin/wrk',
    [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Authorization: ${authorization}`, url],
    {
      timeoutMs: (seconds + 30) * 1000,
    },
  )
  const quantile = (q: string) => {
    const m = new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(stdout)
    if (!m) throw new BenchError(`no ${q}% latency in wrk's output:\n${stdout}`)
    return toMs(m[1] as string, m[2] as string)
  }
  const rps = Number(/Requests\/sec:\s*([\d.]+)/.exec(stdout)?.[1])
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1])
  if (!Number.isFinite(rps) || !Number.isFinite(requests)) throw new BenchError(`cannot read wrk's output:\n${stdout}`)
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1]
  if (bad) throw new BenchError(`wrk saw ${bad} non-2xx answers from ${url}:\n${stdout}`)
  const errors = /Socket errors: (.*)/.exec(stdout)?.[1]
  if (errors && /[1-9]/.test(errors)) throw new BenchError(`wrk saw socket errors on ${url}: ${errors}`)
  return { rps, p50Ms: quantile('50'), p99Ms: quantile('99'), requests }
}
