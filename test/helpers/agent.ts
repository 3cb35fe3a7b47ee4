// Starts the agent as a real process from the entry point `npm start` uses, talks to it over
// HTTP(S), captures its output, and audits that output for secrets. Every test that starts an
// agent stops it by pid (in its `after` hook or a `finally`).
//
// The audit is automatic: every body and Authorization header sent through `agent.request`
// has its secrets recorded (see secretsOfBody), and `agent.stop()` throws when any of them, or the
// agent's own password, appears in the agent's output. A test that leaks fails.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const ENTRY = new URL('../../src/main.ts', import.meta.url).pathname

export interface Reply {
  status: number
  text: string
  headers: Headers
  json: () => any
}

export interface Agent {
  url: string
  pid: number
  root: string
  backupDir: string
  restoreDir: string
  scriptsDir: string
  /** Where the tracing scripts append one line per run: `<stage> <args…>`. */
  traceFile: string
  username: string
  password: string
  output: () => string
  /** Waits until the agent's output matches (log lines arrive a little after the answer). */
  waitForOutput: (pattern: RegExp, timeoutMs?: number) => Promise<void>
  request: (method: string, path: string, body?: unknown, init?: RequestInit) => Promise<Reply>
  waitFor: (kind: 'backup' | 'restore' | 'verify', id: string, timeoutMs?: number) => Promise<any>
  trace: () => Promise<string[]>
  /** The stages that ran, in order, for the job started with parameter job=tag. */
  stagesRun: (tag: string) => Promise<string[]>
  /** Adds values to the audit that did not travel in a request body (e.g. settings). */
  addSecrets: (secrets: Iterable<string>) => void
  /** The secrets recorded so far (own password included). */
  secrets: () => string[]
  /**
   * Fails the test if any recorded secret, any of `extra`, or the agent's own password is in its
   * output. stop() runs it too.
   */
  assertNoSecrets: (extra?: string[]) => void
  /** Sends a signal to the agent process. */
  signal: (signal: NodeJS.Signals) => void
  /** Closes the reading ends of these outputs (both by default): its writes there fail from now on (EPIPE). */
  closeOutput: (streams?: readonly ('stdout' | 'stderr')[]) => void
  /** Sends a signal and waits for the process to exit; the directories stay. */
  kill: (signal: NodeJS.Signals) => Promise<number | null>
  /** The options to start another agent on the same directories and state (a restart). */
  restartOptions: () => AgentOptions
  /** Stops the process, removes its directories (unless keepFiles), then audits its output (throws on a leak). */
  stop: (options?: { keepFiles?: boolean }) => Promise<void>
}

export interface RequestInit {
  /** The Authorization header; null sends none, undefined the agent's credentials. */
  auth?: string | null
  headers?: Record<string, string | string[]>
  /** Sent as the body byte for byte (instead of JSON of `body`). */
  raw?: string | Buffer
  /** Local address to send from (any 127.x.y.z works on Linux): another client to the agent. */
  from?: string
  /** A connection of its own (no keep-alive reuse). */
  fresh?: boolean
  timeoutMs?: number
}

/** Client-side TLS for an agent started with tls_cert_file: trust, and a client certificate. */
export interface ClientTls {
  ca: Buffer | string
  cert?: Buffer | string
  key?: Buffer | string
}

export interface AgentOptions {
  env?: Record<string, string>
  /** Script bodies by stage name; stages not given get a tracing no-op script. */
  scripts?: Record<string, string>
  /** Keep scripts_path empty (no script at all). */
  noDefaultScripts?: boolean
  /** Talk HTTPS to the agent with this trust (and client certificate). */
  tls?: ClientTls
  /** Reuse this root (directories, state, scripts) instead of a new one: a restart. */
  root?: string
  /** Credentials to keep across a restart. */
  password?: string
  /** Start this command instead of `node src/main.ts` (a release's `bin/osb-backup-agent serve`). */
  command?: [string, ...string[]]
}

export const BACKUP_STAGES = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
export const RESTORE_STAGES = ['pre-restore-lock', 'restore', 'restore-cleanup', 'post-restore-unlock']

/**
 * A script that records its stage and arguments, then runs `body`. A job started with the
 * parameter job also records `<stage>` under that tag (see Agent.stagesRun).
 */
export function tracingScript(traceFile: string, stage: string, body = ''): string {
  return [
    '#!/bin/bash',
    `printf '%s\\n' "${stage} $*" >> '${traceFile}'`,
    `if [ -n "$job" ]; then printf '%s\\n' "$job ${stage}" >> '${traceFile}.jobs'; fi`,
    body,
    '',
  ].join('\n')
}

/** The default backup script: writes a dump named after its 5th argument. */
export const WRITE_DUMP = 'printf "dump of %s\\n" "$4" > "$5.sql"'
/** The default restore script: prints the restored file. */
export const PRINT_RESTORED = 'if [ -n "$5" ]; then cat "$5"; fi'

/** Secrets shorter than this are not audited: they would match by chance ("p" is in every log). */
export const MIN_AUDITED_LENGTH = 8
/** Anywhere in a body: password, authSecret, backupPassword, a token… */
const SECRET_FIELD = /password|secret|token|^encryption_?key$/i
/** Inside `parameters` (SPEC §4 masks these). */
const SECRET_PARAMETER = /secret|pass|pwd|token|key|auth|cred|private/i

/**
 * The secrets of a request body: values of password/secret/token fields and `encryption_key`
 * anywhere, and of parameters whose name contains secret, pass, pwd, token, key, auth, cred or private. `"none"` (the
 * manager's "no encryption") and values too short to audit are left out.
 */
export function secretsOfBody(body: unknown): string[] {
  const found = new Set<string>()
  const walk = (value: unknown, inParameters: boolean, depth: number): void => {
    if (depth > 64 || typeof value !== 'object' || value === null) return
    for (const [key, child] of Object.entries(value)) {
      const isParameters = key.toLowerCase() === 'parameters'
      if (typeof child === 'string' || typeof child === 'number') {
        const named = Array.isArray(value) ? false : SECRET_FIELD.test(key) || (inParameters && SECRET_PARAMETER.test(key))
        if (named) found.add(String(child))
      } else {
        walk(child, inParameters || isParameters, depth + 1)
      }
    }
  }
  walk(body, false, 0)
  return [...found].filter((s) => s.length >= MIN_AUDITED_LENGTH && s !== 'none')
}

/** The secrets of a raw body: those of its JSON, if it is JSON. */
export function secretsOfRaw(raw: string | Buffer): string[] {
  try {
    return secretsOfBody(JSON.parse(raw.toString()))
  } catch {
    return []
  }
}

/** The password of a Basic Authorization header (a wrong guess is a secret too), and the header. */
export function secretsOfAuthorization(header: string): string[] {
  const out = [header]
  const token = /^\s*basic\s+(\S+)/i.exec(header)?.[1]
  if (token) {
    const decoded = Buffer.from(token, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon >= 0) out.push(decoded.slice(colon + 1))
  }
  return out.filter((s) => s.length >= MIN_AUDITED_LENGTH)
}

/** Where in the output a secret appears, for the failure message. */
function leakReport(output: string, secrets: Iterable<string>): string | undefined {
  for (const secret of secrets) {
    const at = output.indexOf(secret)
    if (at < 0) continue
    const lineStart = output.lastIndexOf('\n', at) + 1
    const lineEnd = output.indexOf('\n', at)
    const line = output.slice(lineStart, lineEnd < 0 ? undefined : lineEnd)
    return `the agent's output contains the secret ${JSON.stringify(secret)} in the line:\n${line.slice(0, 500)}`
  }
  return undefined
}

/** One HTTP(S) request with node:http (fetch refuses some methods and headers the tests need). */
export function sendRequest(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  payload: string | Buffer | undefined,
  options: { tls?: ClientTls; from?: string; fresh?: boolean; timeoutMs?: number } = {},
): Promise<Reply> {
  const target = new URL(url)
  const secure = target.protocol === 'https:'
  // Node sends a GET or DELETE body without a length unless told: the server would read it as the
  // next request.
  if (
    payload !== undefined &&
    !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length' || h.toLowerCase() === 'transfer-encoding')
  ) {
    headers = { ...headers, 'content-length': String(Buffer.byteLength(payload)) }
  }
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      {
        host: target.hostname,
        port: target.port,
        method,
        path,
        headers,
        localAddress: options.from,
        agent: options.fresh || secure ? false : undefined,
        timeout: options.timeoutMs ?? 30_000,
        ...(secure ? { ca: options.tls?.ca, cert: options.tls?.cert, key: options.tls?.key } : {}),
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          const replyHeaders = new Headers()
          for (const [name, value] of Object.entries(res.headers)) {
            for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) replyHeaders.append(name, v)
          }
          resolve({ status: res.statusCode ?? 0, text, headers: replyHeaders, json: () => JSON.parse(text) })
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${options.timeoutMs ?? 30_000} ms`)))
    req.on('error', reject)
    req.end(payload)
  })
}

export async function startAgent(options: AgentOptions = {}): Promise<Agent> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'osb-agent-test-')))
  const backupDir = join(root, 'backup')
  const restoreDir = join(root, 'restore')
  const scriptsDir = join(root, 'scripts')
  const traceFile = join(root, 'trace.log')
  await mkdir(scriptsDir, { recursive: true })
  const defaults: Record<string, string> = options.noDefaultScripts ? {} : { backup: WRITE_DUMP, restore: PRINT_RESTORED }
  const stages = options.noDefaultScripts ? [] : [...BACKUP_STAGES, ...RESTORE_STAGES]
  for (const stage of options.root ? [] : new Set([...stages, ...Object.keys(options.scripts ?? {})])) {
    const body = options.scripts?.[stage] ?? defaults[stage] ?? ''
    const file = join(scriptsDir, stage.endsWith('.sh') ? stage : `${stage}.sh`)
    await writeFile(file, tracingScript(traceFile, stage.replace(/\.sh$/, ''), body))
    await chmod(file, 0o755)
  }
  const username = 'manager'
  const password = options.password ?? `agent-pw-${Math.random().toString(36).slice(2)}`
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    client_username: username,
    client_password: password,
    client_host: '127.0.0.1',
    client_port: '0',
    directory_backup: backupDir,
    directory_restore: restoreDir,
    scripts_path: scriptsDir,
    ...options.env,
  }
  // The agent works in its root: relative settings (local_storage_root) land there.
  const [command, ...args] = options.command ?? [process.execPath, ENTRY]
  const child = spawn(command, args, { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  const closed = new Promise((r) => child.once('close', r))
  let output = ''
  child.stdout.on('data', (c: Buffer) => (output += c.toString()))
  child.stderr.on('data', (c: Buffer) => (output += c.toString()))
  const port = await listeningPort(child, () => output)
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
  const secrets = new Set<string>([password])
  const addSecrets = (values: Iterable<string>) => {
    for (const v of values) if (v.length >= MIN_AUDITED_LENGTH) secrets.add(v)
  }

  const request: Agent['request'] = async (method, path, body, init = {}) => {
    const headers: Record<string, string | string[]> = { ...init.headers }
    if (init.auth !== null) headers.authorization = init.auth ?? basic
    for (const name of Object.keys(headers).filter((h) => h.toLowerCase() === 'authorization')) {
      const value = headers[name] as string | string[]
      for (const v of Array.isArray(value) ? value : [value]) addSecrets(secretsOfAuthorization(v))
    }
    let payload: string | Buffer | undefined = init.raw
    if (payload === undefined && body !== undefined) {
      payload = JSON.stringify(body)
      headers['content-type'] ??= 'application/json'
    }
    if (body !== undefined) addSecrets(secretsOfBody(body))
    if (init.raw !== undefined) addSecrets(secretsOfRaw(init.raw))
    return sendRequest(url, method, path, headers, payload, {
      tls: options.tls,
      from: init.from,
      fresh: init.fresh,
      timeoutMs: init.timeoutMs,
    })
  }
  let stopped: Promise<void> | undefined

  const agent: Agent = {
    url,
    pid: child.pid as number,
    root,
    backupDir,
    restoreDir,
    scriptsDir,
    traceFile,
    username,
    password,
    output: () => output,
    async waitForOutput(pattern, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (!pattern.test(output)) {
        if (Date.now() > deadline) assert.fail(`no ${pattern} in the agent's output within ${timeoutMs} ms:\n${output.slice(-2000)}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    request,
    async waitFor(kind, id, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const res = await request('GET', `/${kind}/${id}`)
        assert.equal(res.status, 200, `GET /${kind}/${id} answered ${res.status}: ${res.text}`)
        const body = res.json()
        if (body.status !== 'RUNNING') return body
        if (Date.now() > deadline) assert.fail(`${kind} ${id} still RUNNING after ${timeoutMs} ms (state ${body.state})`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    async stagesRun(tag) {
      const text = await readFile(`${traceFile}.jobs`, 'utf8').catch(() => '')
      return text
        .split('\n')
        .filter((l) => l.startsWith(`${tag} `))
        .map((l) => l.slice(tag.length + 1))
    },
    async trace() {
      const text = await readFile(traceFile, 'utf8').catch(() => '')
      return text.split('\n').filter((l) => l !== '')
    },
    addSecrets,
    secrets: () => [...secrets],
    assertNoSecrets(extra = []) {
      const leak = leakReport(output, [...secrets, ...extra])
      if (leak) assert.fail(leak)
    },
    signal(signal) {
      process.kill(child.pid as number, signal)
    },
    closeOutput(streams = ['stdout', 'stderr']) {
      for (const stream of streams) child[stream].destroy()
    },
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      process.kill(child.pid as number, signal)
      return exited
    },
    restartOptions: () => ({ root, password, env: options.env, ...(options.tls ? { tls: options.tls } : {}) }),
    stop(stopOptions = {}) {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          process.kill(child.pid as number, 'SIGTERM')
          const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid as number, 'SIGKILL'), 5000)
          await closed
          clearTimeout(timer)
        }
        // 'close' (not 'exit'): every line the agent wrote has arrived before the audit.
        await closed
        if (!stopOptions.keepFiles) await rm(root, { recursive: true, force: true })
        agent.assertNoSecrets()
      })()
      return stopped
    },
  }
  return agent
}

function listeningPort(child: ChildProcess, output: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start within 15 s:\n${output()}`)), 15_000)
    const check = () => {
      const match = /"port":(\d+)[^\n]*"msg":"agent listening"/.exec(output())
      if (match) {
        clearTimeout(timer)
        child.stdout?.off('data', check)
        resolve(Number(match[1]))
      }
    }
    child.stdout?.on('data', check)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`agent exited with ${code} before listening:\n${output()}`))
    })
  })
}

/** Runs the agent entry point to its exit (for start-up failures). */
export function runAgentToExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ENTRY], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr.on('data', (c: Buffer) => (output += c.toString()))
    const timer = setTimeout(() => process.kill(child.pid as number, 'SIGKILL'), 15_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}
