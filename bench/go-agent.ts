// The Go agent this project replaces (BENCH_GO_AGENT=<path to its binary>), measured beside ours
// in the same run. Without it, the figures that need it say so and are skipped; nothing else
// depends on it. It reads its configuration from the environment only and hands that whole
// environment to its scripts, so it gets exactly the variables below (as under `env -i`). It
// listens on every interface: the bench talks to it on 127.0.0.1 only and stops it by its pid.
import { spawn, type ChildProcess } from 'node:child_process'
import { accessSync, closeSync, constants, mkdirSync, openSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { firstOk, HttpClient, type Target } from './client.ts'
import { BenchError, freePort, now, running, stopChild, tailOf, WORK, writeScripts } from './lib.ts'
import { processTree } from './proc.ts'

/** The Go agent's binary, or undefined when BENCH_GO_AGENT is not set; a wrong path fails the run. */
export function goAgentPath(): string | undefined {
  const path = process.env.BENCH_GO_AGENT
  if (!path) return undefined
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new BenchError(`BENCH_GO_AGENT=${path} is not an executable file`)
  }
  return path
}

export const GO_SKIPPED = 'skipped: BENCH_GO_AGENT not set'

export interface GoAgent extends Target {
  root: string
  /** performance.now() of its first 200 on /status. */
  readyAt: number
  stop: () => Promise<void>
}

/** Its whole environment: `client_port` on every interface (it cannot be told otherwise). */
export function goEnvironment(root: string, port: number, username: string, password: string): Record<string, string> {
  return {
    PATH: '/usr/bin:/bin', // its scripts run `bash` found on PATH
    client_username: username,
    client_password: password,
    client_port: String(port),
    directory_backup: join(root, 'backup'),
    directory_restore: join(root, 'restore'),
    scripts_path: join(root, 'scripts'),
  }
}

let count = 0

/**
 * A Go agent with its own folders under WORK and `<stage>.sh` scripts (no-op unless given). Its
 * log (about five lines per request) goes to a file in its folder, removed when it stops.
 */
export async function startGoAgent(options: { scripts?: Record<string, string> } = {}): Promise<GoAgent> {
  const binary = goAgentPath()
  if (!binary) throw new BenchError(GO_SKIPPED)
  const root = join(WORK, `go-agent-${process.pid}-${++count}`)
  for (const dir of ['backup', 'restore']) mkdirSync(join(root, dir), { recursive: true })
  writeScripts(join(root, 'scripts'), options.scripts)
  const port = await freePort()
  const username = 'manager'
  const password = `bench-${Math.random().toString(36).slice(2)}`
  const logFile = join(root, 'agent.log')
  const out = openSync(logFile, 'a')
  const child: ChildProcess = spawn(binary, [], { env: goEnvironment(root, port, username, password), stdio: ['ignore', out, out] })
  closeSync(out)
  const url = `http://127.0.0.1:${port}`
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
  const logTail = () => tailOf(logFile)
  const stop = async () => {
    running.delete(agent)
    // Its scripts (a sleeping backup) outlive it otherwise: it does not stop them.
    for (const { pid } of processTree(child.pid as number)
      .slice(1)
      .reverse()) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    await stopChild(child, 'SIGTERM', 10_000)
    if (!process.env.BENCH_KEEP_FILES) rmSync(root, { recursive: true, force: true })
  }
  const agent: GoAgent = {
    name: 'go',
    url,
    pid: child.pid as number,
    root,
    basic,
    scriptsDir: join(root, 'scripts'),
    backupDir: join(root, 'backup'),
    logTail,
    readyAt: 0,
    stop,
  }
  running.add(agent)
  const client = new HttpClient()
  try {
    agent.readyAt = await firstOk(client, `${url}/status`, basic, 5, 20_000, () => child.exitCode === null)
  } catch (error) {
    await stop()
    throw new BenchError(`the Go agent did not start: ${(error as Error).message}\n${logTail()}`)
  } finally {
    client.reset()
  }
  return agent
}

/** One start of the Go agent for the start-up figure: exec → first 200 on /status, in ms. */
export async function goStartup(client: HttpClient, root: string, pollMs: number): Promise<number> {
  const binary = goAgentPath() as string
  const port = await freePort()
  const auth = `Basic ${Buffer.from('manager:startup-pw').toString('base64')}`
  client.reset()
  const started = now()
  const child = spawn(binary, [], { env: goEnvironment(root, port, 'manager', 'startup-pw'), stdio: ['ignore', 'ignore', 'ignore'] })
  try {
    return (await firstOk(client, `http://127.0.0.1:${port}/status`, auth, pollMs, 30_000, () => child.exitCode === null)) - started
  } finally {
    await stopChild(child)
  }
}
