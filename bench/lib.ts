// Shared pieces of the benchmark suite: the storage lab, the peer tools, the agent as a real
// process (`node src/main.ts`, as in production, not through npm), timing and statistics.
// Every process started here is stopped by its pid; nothing listens beyond 127.0.0.1.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeSync,
} from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { firstOk, HttpClient } from './client.ts'

export const ROOT = new URL('..', import.meta.url).pathname
/** This run's files (agents, source files); per process, so two runs never remove each other's. */
export const WORK = join(process.env.BENCH_DIR ?? '/tmp/osb-bench', `run-${process.pid}`)
/** The TypeScript entry point (`node src/main.ts` in a checkout). */
export const SOURCE_ENTRY = join(ROOT, 'src/main.ts')

/** How a figure starts the agent: the command and its arguments. */
export interface AgentCommand {
  command: string
  args: string[]
  /** Extra environment (investigation flags as NODE_OPTIONS for the launcher). */
  env?: Record<string, string>
}

/**
 * The agent under test: by default as operators run it, the release's launcher
 * `bin/osb-backup-agent serve` (which `exec`s Node on the compiled JavaScript with its memory
 * settings) in a release layout built from this checkout by buildRelease() at the start of a
 * run. BENCH_ENTRY=<path to a .ts or .js entry>: `node <entry>` instead (this or another
 * checkout's src/main.ts, for before/after runs).
 */
export let AGENT: AgentCommand = process.env.BENCH_ENTRY
  ? { command: process.execPath, args: [process.env.BENCH_ENTRY] }
  : { command: 'unbuilt', args: [] }

/** A bench agent's whole environment (nothing of the caller's but PATH): 127.0.0.1:`port`, folders under `root`. */
export function agentEnvironment(root: string, port: number, username: string, password: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    client_username: username,
    client_password: password,
    client_host: '127.0.0.1',
    client_port: String(port),
    directory_backup: join(root, 'backup'),
    directory_restore: join(root, 'restore'),
    scripts_path: join(root, 'scripts'),
  }
}

/** The agent's command with the investigation flags of BENCH_AGENT_NODE_ARGS. */
export function agentCommand(): AgentCommand {
  if (AGENT.command === process.execPath) return { ...AGENT, args: [...AGENT_NODE_ARGS, ...AGENT.args] }
  return AGENT_NODE_ARGS.length > 0 ? { ...AGENT, env: { NODE_OPTIONS: AGENT_NODE_ARGS.join(' ') } } : AGENT
}

export const describeAgent = () => [AGENT.command, ...AGENT.args].join(' ')

/**
 * The release layout `npm run release` packs, without the tarball: bin/, dist/ (the bundle of
 * tools/bundle.sh), node/bin/node (this Node) and package.json. Skipped when BENCH_ENTRY is set.
 */
export function buildRelease(): void {
  if (process.env.BENCH_ENTRY) return
  const release = join(WORK, 'release')
  rmSync(release, { recursive: true, force: true })
  mkdirSync(join(release, 'node/bin'), { recursive: true })
  const bundle = spawnSync('bash', [join(ROOT, 'tools/bundle.sh'), join(release, 'dist')], { stdio: 'inherit' })
  if (bundle.status !== 0) throw new BenchError('tools/bundle.sh failed')
  const helper = spawnSync('bash', [join(ROOT, 'tools/build-native.sh'), '--require', join(release, 'libexec')], {
    stdio: 'inherit',
  })
  if (helper.status !== 0) throw new BenchError('tools/build-native.sh failed')
  cpSync(join(ROOT, 'bin'), join(release, 'bin'), { recursive: true })
  copyFileSync(join(ROOT, 'package.json'), join(release, 'package.json'))
  symlinkSync(process.execPath, join(release, 'node/bin/node'))
  AGENT = { command: join(release, 'bin/osb-backup-agent'), args: ['serve'] }
}
export const NODE = process.execPath
/** Extra node flags for the agents the figures start (investigation: `--cpu-prof --cpu-prof-dir=…`). */
const AGENT_NODE_ARGS = (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
export const LAB_DIR = process.env.LAB_DIR ?? '/tmp/osb-storage'
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export interface Row {
  figure: string
  unit: string
  ours: number
  peer: number | null
  /** ours / peer when there is a peer, else ours / target for absolute targets. */
  ratio: number | null
  /** The range of the rounds behind the figure (of the ratio when there is one), "min–max". */
  spread?: string
  target: string
  pass: boolean
  /** A figure that needs the Go agent, which this run did not have (BENCH_GO_AGENT unset). */
  skipped?: boolean
  /** Every round's values, and anything else worth keeping. */
  detail?: Record<string, unknown>
}

export const log = (...args: unknown[]) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`)

export class BenchError extends Error {}

// ---------------------------------------------------------------- statistics

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** "min–max" of a figure's rounds (what "within noise" is judged against). */
export function spread(values: readonly number[], digits = 2): string {
  if (values.length === 0) return ''
  return `${round(Math.min(...values), digits)}–${round(Math.max(...values), digits)}`
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
export const now = () => performance.now()

// ---------------------------------------------------------------- machine, tools, lab

export function machine(): Record<string, unknown> {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown'
  const mem = Number(/MemTotal:\s*(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024
  return {
    nproc: Number(spawnSync('nproc').stdout.toString().trim()),
    cpu,
    memory_gib: round(mem / GiB, 1),
    node: process.version,
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
  }
}

const TOOLS: [string, string][] = [
  ['/usr/bin/wrk', 'wrk'],
  ['/usr/bin/aws', 'awscli'],
  ['/usr/bin/swift', 'python3-swiftclient'],
]

/** wrk, awscli v2 and the swift CLI from Debian; installed when missing (root), else a clear failure. */
export function ensureTools(): void {
  const missing = TOOLS.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg)
  if (missing.length === 0) return
  if (process.getuid?.() !== 0) throw new BenchError(`missing ${missing.join(', ')}: apt-get install ${missing.join(' ')} (as root)`)
  log(`installing ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const apt = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '-q', '--no-install-recommends', ...missing], {
    env,
    stdio: 'inherit',
  })
  if (apt.status !== 0) throw new BenchError(`apt-get install ${missing.join(' ')} failed`)
}

/** Starts the storage lab (idempotent) and returns its endpoints. */
export function ensureLab(): Record<string, string> {
  const up = spawnSync('bash', [join(ROOT, 'test/servers/storage-up.sh')], { stdio: ['ignore', 'ignore', 'inherit'] })
  if (up.status !== 0) throw new BenchError('test/servers/storage-up.sh failed')
  const env: Record<string, string> = {}
  for (const m of readFileSync(`${LAB_DIR}/env`, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) env[m[1] as string] = m[2] as string
  return env
}

/** Free bytes on the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path)
  return s.bavail * s.bsize
}

export function requireFreeDisk(path: string, bytes: number, why: string): void {
  const free = freeBytes(path)
  if (free < bytes) {
    throw new BenchError(
      `not enough free disk for ${why}: ${path} has ${round(free / GiB, 1)} GiB free, needs ${round(bytes / GiB, 1)} GiB`,
    )
  }
}

/**
 * A file of `size` bytes of incompressible data (one random 16 MiB block repeated), kept in WORK
 * between figures of one run.
 */
export function sourceFile(size: number): string {
  mkdirSync(WORK, { recursive: true })
  const path = join(WORK, `source-${size}.bin`)
  if (existsSync(path) && statSync(path).size === size) return path
  requireFreeDisk(WORK, size + GiB, `a ${size}-byte source file`)
  const block = randomFillSync(Buffer.allocUnsafe(16 * MiB))
  const fd = openSync(path, 'w')
  try {
    for (let written = 0; written < size; ) {
      const n = Math.min(block.length, size - written)
      written += writeSync(fd, block, 0, n)
    }
  } finally {
    closeSync(fd)
  }
  return path
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

// ---------------------------------------------------------------- child processes

export interface Finished {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

/** Runs a command to its end (bounded by timeoutMs, then SIGKILL by pid) and times it. */
export function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const started = now()
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), options.timeoutMs ?? 600_000)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: now() - started })
    })
  })
}

export async function runOk(
  command: string,
  args: string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<Finished> {
  const result = await run(command, args, options)
  if (result.code !== 0) throw new BenchError(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr.slice(-2000)}`)
  return result
}

/** Peak resident set size (VmHWM) of a live process, in bytes. */
export function peakRss(pid: number): number {
  const kb = /VmHWM:\s*(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  if (kb === undefined) throw new BenchError(`no VmHWM for pid ${pid}`)
  return Number(kb) * 1024
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve()
  const pid = child.pid
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }, graceMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    try {
      process.kill(pid, signal)
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })
}

// ---------------------------------------------------------------- the agent

export interface AgentOptions {
  /** Script bodies by stage; stages not given get a no-op. */
  scripts?: Record<string, string>
  env?: Record<string, string>
  /** Reuse a root (a prepared state directory). */
  root?: string
}

export interface Agent {
  /** 'ours' (the Go agent's figures say 'go'). */
  name: string
  url: string
  pid: number
  root: string
  backupDir: string
  restoreDir: string
  scriptsDir: string
  basic: string
  username: string
  password: string
  request: (method: string, path: string, body?: unknown) => Promise<{ status: number; text: string }>
  /** Polls every `pollMs` until the job leaves RUNNING; returns the body and when that was seen. */
  waitFor: (
    kind: 'backup' | 'restore',
    id: string,
    options?: { pollMs?: number; timeoutMs?: number; onBody?: (body: any, at: number) => void },
  ) => Promise<{ body: any; at: number }>
  waitForState: (kind: 'backup' | 'restore', id: string, state: string, timeoutMs?: number) => Promise<void>
  peakRss: () => number
  logTail: () => string
  stop: () => Promise<void>
}

export const STAGES = [
  'pre-backup-lock',
  'pre-backup-check',
  'backup',
  'backup-cleanup',
  'post-backup-unlock',
  'pre-restore-lock',
  'restore',
  'restore-cleanup',
  'post-restore-unlock',
]

let agentCount = 0

export async function startAgent(options: AgentOptions = {}): Promise<Agent> {
  const root = options.root ?? join(WORK, `agent-${process.pid}-${++agentCount}`)
  const backupDir = join(root, 'backup')
  const restoreDir = join(root, 'restore')
  const scriptsDir = join(root, 'scripts')
  writeScripts(scriptsDir, options.scripts)
  const port = await freePort()
  const username = 'manager'
  const password = `bench-${Math.random().toString(36).slice(2)}`
  const logFile = join(root, 'agent.log')
  const out = openSync(logFile, 'a')
  const command = agentCommand()
  const child = spawn(command.command, command.args, {
    env: { ...command.env, ...agentEnvironment(root, port, username, password), ...options.env },
    stdio: ['ignore', out, out],
  })
  closeSync(out)
  const url = `http://127.0.0.1:${port}`
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
  const logTail = () => tailOf(logFile)
  // Ready at its first 200 on /status, asked the way the Go agent is (go-agent.ts); the client's
  // connection is closed after it, so an agent left alone (the idle figure) has no client.
  const probe = new HttpClient()
  try {
    await firstOk(probe, `${url}/status`, basic, 20, 20_000, () => child.exitCode === null)
  } catch (error) {
    await stopChild(child, 'SIGKILL')
    throw new BenchError(`the agent did not start: ${(error as Error).message}\n${logTail()}`)
  } finally {
    probe.reset()
  }

  const request: Agent['request'] = async (method, path, body) => {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: basic, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return { status: res.status, text: await res.text() }
  }
  const agent: Agent = {
    name: 'ours',
    url,
    pid: child.pid as number,
    root,
    backupDir,
    restoreDir,
    scriptsDir,
    basic,
    username,
    password,
    request,
    async waitFor(kind, id, { pollMs = 20, timeoutMs = 600_000, onBody } = {}) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const res = await request('GET', `/${kind}/${id}`)
        const at = now()
        if (res.status !== 200) throw new BenchError(`GET /${kind}/${id} answered ${res.status}: ${res.text.slice(0, 500)}`)
        const body = JSON.parse(res.text)
        onBody?.(body, at)
        if (body.status !== 'RUNNING') return { body, at }
        if (Date.now() > until) throw new BenchError(`${kind} ${id} still RUNNING after ${timeoutMs} ms (state ${body.state})`)
        await sleep(pollMs)
      }
    },
    async waitForState(kind, id, state, timeoutMs = 120_000) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const body = JSON.parse((await request('GET', `/${kind}/${id}`)).text)
        if (body.state === state) return
        if (body.status !== 'RUNNING')
          throw new BenchError(`${kind} ${id} ended (${body.status}: ${body.error_message ?? ''}) before reaching ${state}`)
        if (Date.now() > until) throw new BenchError(`${kind} ${id} did not reach ${state} within ${timeoutMs} ms (state ${body.state})`)
        await sleep(20)
      }
    },
    peakRss: () => peakRss(child.pid as number),
    logTail,
    async stop() {
      await stopChild(child, 'SIGTERM', 70_000)
      if (!options.root && !process.env.BENCH_KEEP_FILES) rmSync(root, { recursive: true, force: true })
    },
  }
  running.add(agent)
  const stop = agent.stop
  agent.stop = async () => {
    running.delete(agent)
    await stop()
  }
  return agent
}

/**
 * How a backup script hands the agent the prepared source file `$src` as its dump: moved into
 * the job directory (a rename, so the timed job copies nothing), and moved back by the cleanup
 * script (SOURCE_BACK, which runs after the upload, in the job directory). A hard link was used
 * before; the agent now refuses a backup file with a second name (it may be a file outside the
 * job directory). A job that fails before its cleanup leaves the source gone, and sourceFile()
 * makes it again.
 */
export const SOURCE_IN = 'mv -- "$src" "$5.bin"'
export const SOURCE_BACK = 'if [ -n "$src" ] && [ ! -e "$src" ]; then shopt -s nullglob; for f in ./*.bin; do mv -- "$f" "$src"; done; fi'

/** `<stage>.sh` for every stage in `dir`: the body given, else a no-op. */
export function writeScripts(dir: string, scripts: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true })
  for (const stage of STAGES) writeFileExecutable(join(dir, `${stage}.sh`), `#!/bin/bash\n${scripts[stage] ?? ':'}\n`)
}

function writeFileExecutable(path: string, text: string): void {
  const fd = openSync(path, 'w')
  writeSync(fd, text)
  closeSync(fd)
  chmodSync(path, 0o755)
}

/** Agents still running, ours and the Go agent (stopped on the way out, whatever happened). */
export const running = new Set<{ stop: () => Promise<void> }>()

// ---------------------------------------------------------------- trigger bodies

export function jobId(): string {
  return `bench${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`
}

export function s3Destination(lab: Record<string, string>, bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'S3',
    bucket,
    endpoint: new URL(lab.S3_ENDPOINT as string).host,
    region: lab.S3_REGION,
    useSSL: false,
    authKey: lab.S3_ACCESS_KEY,
    authSecret: lab.S3_SECRET_KEY,
    filenamePrefix: 'bench/',
    skipStorage: false,
    ...extra,
  }
}

export function swiftDestination(
  lab: Record<string, string>,
  container: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: 'SWIFT',
    authUrl: lab.SWIFT_V1_AUTH_URL,
    domain: null,
    project_name: null,
    username: lab.SWIFT_V1_USER,
    password: lab.SWIFT_V1_KEY,
    container_name: container,
    filenamePrefix: '',
    skipStorage: false,
    ...extra,
  }
}

export function triggerBody(
  id: string,
  destination: Record<string, unknown>,
  parameters: Record<string, string> = {},
  kind: 'backup' | 'restore' = 'backup',
  encryptionKey: string | null = null,
): Record<string, unknown> {
  return {
    id,
    compression: false,
    encryption_key: encryptionKey,
    destination,
    [kind]: { host: '127.0.0.1', username: 'bench', password: 'bench-db-password', database: 'benchdb', parameters: [parameters] },
  }
}

/** Starts a job and returns when it was posted (performance.now()). */
export async function trigger(agent: Agent, kind: 'backup' | 'restore', body: Record<string, unknown>): Promise<number> {
  const at = now()
  const res = await agent.request(kind === 'backup' ? 'POST' : 'PUT', `/${kind}`, body)
  if (res.status !== 201) throw new BenchError(`${kind} trigger answered ${res.status}: ${res.text.slice(0, 500)}`)
  return at
}

/** Runs one job to its end; fails loudly unless it SUCCEEDED. Returns ms from trigger to the poll that saw it end. */
export async function runJobToEnd(
  agent: Agent,
  kind: 'backup' | 'restore',
  body: Record<string, unknown>,
  pollMs = 20,
): Promise<{ ms: number; body: any; stages: Record<string, number> }> {
  const started = await trigger(agent, kind, body)
  const stages: Record<string, number> = {}
  let last = ''
  const result = await agent.waitFor(kind, body.id as string, {
    pollMs,
    onBody: (b, at) => {
      if (b.state !== last) {
        stages[b.state] = at - started
        last = b.state
      }
    },
  })
  if (result.body.status !== 'SUCCEEDED')
    throw new BenchError(`${kind} ${body.id as string} ${result.body.status}: ${result.body.error_message ?? ''}\n${agent.logTail()}`)
  return { ms: result.at - started, body: result.body, stages }
}

/**
 * Milliseconds between entering `from` and entering `to`, as seen by the polls of runJobToEnd;
 * when `to` went by between two polls, until the first state seen after `from` instead.
 */
export function stageMs(stages: Record<string, number>, from: string, to: string): number {
  const seen = Object.entries(stages) // in the order the polls saw them
  const i = seen.findIndex(([state]) => state === from)
  const end = stages[to] ?? seen[i + 1]?.[1]
  if (i < 0 || end === undefined) throw new BenchError(`stages ${from} → ${to} not both seen: ${JSON.stringify(stages)}`)
  return end - (seen[i] as [string, number])[1]
}

/** The last 3000 characters of an agent's log file ('' when there is none yet). */
export function tailOf(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').slice(-3000)
  } catch {
    return ''
  }
}
