// Starts the agent as a real process from the entry point `npm start` uses, talks to it over
// HTTP, captures its output, and audits that output for secrets. Every test that starts an
// agent stops it by pid in its `after` hook.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
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
  request: (method: string, path: string, body?: unknown, init?: { auth?: string | null; headers?: Record<string, string>; raw?: string | Buffer }) => Promise<Reply>
  waitFor: (kind: 'backup' | 'restore', id: string, timeoutMs?: number) => Promise<any>
  trace: () => Promise<string[]>
  /** The stages that ran, in order, for the job started with parameter JOB=tag. */
  stagesRun: (tag: string) => Promise<string[]>
  /** Fails the test if any of these strings (or the agent's own password) is in its output. */
  assertNoSecrets: (secrets: string[]) => void
  /** Sends a signal and waits for the process to exit; the directories stay. */
  kill: (signal: NodeJS.Signals) => Promise<number | null>
  /** The options to start another agent on the same directories and state (a restart). */
  restartOptions: () => AgentOptions
  stop: (options?: { keepFiles?: boolean }) => Promise<void>
}

export interface AgentOptions {
  env?: Record<string, string>
  /** Script bodies by stage name; stages not given get a tracing no-op script. */
  scripts?: Record<string, string>
  /** Keep scripts_path empty (no script at all). */
  noDefaultScripts?: boolean
  /** Reuse this root (directories, state, scripts) instead of a new one: a restart. */
  root?: string
  /** Credentials to keep across a restart. */
  password?: string
}

export const BACKUP_STAGES = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
export const RESTORE_STAGES = ['pre-restore-lock', 'restore', 'restore-cleanup', 'post-restore-unlock']

/**
 * A script that records its stage and arguments, then runs `body`. A job started with the
 * parameter JOB also records `<stage>` under that tag (see Agent.stagesRun).
 */
export function tracingScript(traceFile: string, stage: string, body = ''): string {
  return [
    '#!/bin/bash',
    `printf '%s\\n' "${stage} $*" >> '${traceFile}'`,
    `if [ -n "$JOB" ]; then printf '%s\\n' "$JOB ${stage}" >> '${traceFile}.jobs'; fi`,
    body,
    '',
  ].join('\n')
}

/** The default backup script: writes a dump named after its 5th argument. */
export const WRITE_DUMP = 'printf "dump of %s\\n" "$4" > "$5.sql"'
/** The default restore script: prints the restored file. */
export const PRINT_RESTORED = 'if [ -n "$5" ]; then cat "$5"; fi'

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
  const child = spawn(process.execPath, [ENTRY], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => (output += c.toString()))
  child.stderr.on('data', (c: Buffer) => (output += c.toString()))
  const port = await listeningPort(child, () => output)
  const url = `http://127.0.0.1:${port}`
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`

  const request: Agent['request'] = async (method, path, body, init = {}) => {
    const headers: Record<string, string> = { ...init.headers }
    if (init.auth !== null) headers.authorization = init.auth ?? basic
    let payload: string | Buffer | undefined = init.raw
    if (payload === undefined && body !== undefined) {
      payload = JSON.stringify(body)
      headers['content-type'] ??= 'application/json'
    }
    const res = await fetch(url + path, { method, headers, body: payload })
    const text = await res.text()
    return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) }
  }

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
      return text.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(tag.length + 1))
    },
    async trace() {
      const text = await readFile(traceFile, 'utf8').catch(() => '')
      return text.split('\n').filter((l) => l !== '')
    },
    assertNoSecrets(secrets) {
      for (const secret of [...secrets, password]) {
        assert.ok(!output.includes(secret), `the agent's output contains the secret ${JSON.stringify(secret)}`)
      }
    },
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      process.kill(child.pid as number, signal)
      return exited
    },
    restartOptions: () => ({ root, password, env: options.env }),
    async stop(stopOptions = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        process.kill(child.pid as number, 'SIGTERM')
        const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid as number, 'SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
      if (!stopOptions.keepFiles) await rm(root, { recursive: true, force: true })
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
