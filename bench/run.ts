// `npm run bench [-- figure…]`: runs the benchmark suite of issue 8 (and issue 6's streaming
// figure) against the real storage lab, prints one table and writes bench/results/latest.json.
// Figures: polling, polling-load, s3, swift, memory, overhead, startup, streaming
// (groups: transfer = s3 swift; all = everything, the default).
// Knobs: BENCH_SECONDS (wrk window, 10), BENCH_ROUNDS (transfer rounds, 3), BENCH_DIR (/tmp/osb-bench).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BenchError, buildRelease, describeAgent, ensureLab, ensureTools, log, machine, ROOT, running, WORK, type Row } from './lib.ts'
import { memory } from './memory.ts'
import { overhead, startup } from './jobs.ts'
import { polling } from './polling.ts'
import { streaming } from './streaming.ts'
import { transfers } from './transfer.ts'

const FIGURES = ['polling', 'polling-load', 's3', 'swift', 'memory', 'overhead', 'startup', 'streaming'] as const
type Figure = (typeof FIGURES)[number]
const GROUPS: Record<string, Figure[]> = { all: [...FIGURES], transfer: ['s3', 'swift'] }

function selected(args: string[]): Set<Figure> {
  if (args.length === 0) return new Set(FIGURES)
  const out = new Set<Figure>()
  for (const arg of args) {
    const group = GROUPS[arg]
    if (group) group.forEach((f) => out.add(f))
    else if ((FIGURES as readonly string[]).includes(arg)) out.add(arg as Figure)
    else throw new BenchError(`unknown figure ${arg}; choose from ${[...FIGURES, ...Object.keys(GROUPS)].join(', ')}`)
  }
  return out
}

function table(rows: Row[]): string {
  const header = ['figure', 'ours', 'peer', 'ratio', 'target', 'result']
  const lines = rows.map((r) => [r.figure, `${r.ours} ${r.unit}`, r.peer === null ? '–' : `${r.peer} ${r.unit}`, r.ratio === null ? '–' : `${r.ratio}`, r.target, r.pass ? 'pass' : 'FAIL'])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)))
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...lines.map(fmt)].join('\n')
}

async function main(): Promise<number> {
  const figures = selected(process.argv.slice(2))
  const seconds = Number(process.env.BENCH_SECONDS ?? 10)
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
  const started = new Date()
  const before = machine()
  ensureTools()
  const lab = ensureLab()
  mkdirSync(WORK, { recursive: true })
  buildRelease()
  log(`agent under test: ${describeAgent()}`)
  const rows: Row[] = []
  const failures: string[] = []
  const attempt = async (name: string, work: () => Promise<Row[]>) => {
    log(`--- ${name}`)
    try {
      rows.push(...(await work()))
    } catch (error) {
      // One broken figure is reported (as a failed row) and the others still run.
      log(`${name} failed: ${(error as Error).stack ?? String(error)}`)
      failures.push(`${name}: ${(error as Error).message}`)
      rows.push({ figure: `${name} (did not complete)`, unit: '', ours: NaN, peer: null, ratio: null, target: (error as Error).message.slice(0, 120), pass: false })
    }
  }
  try {
    if (figures.has('polling') || figures.has('polling-load')) {
      await attempt('polling', () => polling(lab, { seconds, rounds: 3, plain: figures.has('polling'), load: figures.has('polling-load') }))
    }
    if (figures.has('s3')) await attempt('s3', () => transfers(lab, 's3', rounds))
    if (figures.has('swift')) await attempt('swift', () => transfers(lab, 'swift', rounds))
    if (figures.has('memory')) await attempt('memory', () => memory(lab))
    if (figures.has('overhead')) await attempt('overhead', () => overhead())
    if (figures.has('startup')) await attempt('startup', () => startup())
    if (figures.has('streaming')) await attempt('streaming', () => streaming(lab))
  } finally {
    for (const agent of running) await agent.stop().catch(() => {})
    if (!process.env.BENCH_KEEP_FILES) rmSync(WORK, { recursive: true, force: true })
  }
  const result = {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    figures: [...figures],
    machine: { ...before, loadavg_at_start: before.loadavg, loadavg_at_end: machine().loadavg },
    agent_command: describeAgent(),
    note: 'shared 2-core machine: other test runs compete for CPU; compare ratios measured in the same run',
    pass: rows.every((r) => r.pass),
    rows,
    failures,
  }
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench/results/latest.json'), `${JSON.stringify(result, null, 2)}\n`)
  process.stdout.write(`\n${table(rows)}\n\n${result.pass ? 'all targets met' : 'some targets missed'}; written to bench/results/latest.json\n`)
  return result.pass ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof BenchError ? error.message : (error as Error).stack}\n`)
    process.exit(2)
  },
)
