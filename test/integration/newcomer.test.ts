// The newcomer's path and the release, as a person would take them:
// 1. a clean copy of the repository, `npm ci && npm start` with an empty environment, then the
//    CLI runs a LOCAL backup and restore and `wait` exits 0;
// 2. the release tarball unpacked into an empty folder runs the agent and the CLI with no
//    node_modules of the repository and no Node 24 on the PATH.
// Both use the demo's fixed port 8000, so they run one after the other in this file.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdirSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { runCli } from '../helpers/cli.ts'

const REPO = new URL('../..', import.meta.url).pathname
/** What a newcomer's shell has: a PATH with the machine's npm (and its older Node), a HOME. */
const SHELL_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/root' }

interface Started {
  child: ChildProcess
  output: () => string
  /** SIGTERM to the process group this test started, then wait for its leader to exit. */
  stop: () => Promise<void>
}

/** Starts a command in its own process group (npm start runs node below it) and waits for the agent. */
async function startDemo(argv: string[], cwd: string): Promise<Started> {
  const [cmd, ...args] = argv
  const child = spawn(cmd as string, args, { cwd, env: SHELL_ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    process.kill(-(child.pid as number), 'SIGTERM')
    const timer = setTimeout(() => child.exitCode === null && process.kill(-(child.pid as number), 'SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
  const deadline = Date.now() + 60_000
  while (!/"msg":"agent listening"/.test(output)) {
    if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited with ${child.exitCode}:\n${output}`)
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`${argv.join(' ')} did not start the agent in 60 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, output: () => output, stop }
}

/** The demo round trip through the CLI: backup, wait (exit 0), restore of that file, wait (exit 0). */
async function demoRoundTrip(cli: string[], cwd: string): Promise<void> {
  const [bin, ...pre] = cli
  const run = (args: string[]) => runCli([...pre, ...args], { bin, cwd, env: SHELL_ENV, timeoutMs: 120_000 })
  const started = await run(['backup', '--json', '--database', 'shop'])
  assert.equal(started.code, 0, started.stderr)
  const { id } = JSON.parse(started.stdout.trim().split('\n').at(-1) as string)
  const waited = await run(['wait', id, '--json'])
  assert.equal(waited.code, 0, waited.stderr)
  const backup = JSON.parse(waited.stdout.trim().split('\n').at(-1) as string)
  assert.equal(backup.status, 'SUCCEEDED')
  assert.equal(backup.type, 'LOCAL')
  const stored = join(cwd, 'var', 'storage', backup.filename)
  assert.ok(statSync(stored).size > 0, `${stored} is missing`)

  const restored = await run(['restore', '--filename', backup.filename, '--wait'])
  assert.equal(restored.code, 0, restored.stderr)
  assert.match(restored.stdout, /restore SUCCEEDED/)
}

async function checkDemoStart(agent: Started, cwd: string): Promise<void> {
  const file = join(cwd, 'var', 'credentials')
  assert.equal(statSync(file).mode & 0o777, 0o600)
  const text = await readFile(file, 'utf8')
  assert.match(text, /^client_username=\S+\nclient_password=\S+\n$/)
  const password = /client_password=(\S+)/.exec(text)?.[1] as string
  assert.ok(agent.output().includes(file), 'the log says where the credentials are')
  assert.ok(!agent.output().includes(password), 'the log never says what they are')
  assert.match(agent.output(), /"host":"127\.0\.0\.1","port":8000/)
}

describe('newcomer path and release', () => {
  let work: string
  let copy: string
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'osb-newcomer-'))
  })
  after(async () => {
    await rm(work, { recursive: true, force: true })
  })

  it('a clean copy: npm ci && npm start, then a LOCAL backup and restore with the CLI', { timeout: 600_000 }, async () => {
    copy = join(work, 'repo')
    // the repository's files as a fresh clone has them (tracked and new, nothing ignored)
    const files = execFileSync('git', ['ls-files', '-z', '-c', '-o', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' })
      .split('\0')
      .filter((f) => f !== '')
    for (const file of files) {
      mkdirSync(dirname(join(copy, file)), { recursive: true })
      cpSync(join(REPO, file), join(copy, file), { dereference: false })
    }
    execFileSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: copy,
      env: SHELL_ENV,
      stdio: 'ignore',
      timeout: 480_000,
    })

    const agent = await startDemo(['npm', 'start'], copy)
    try {
      await checkDemoStart(agent, copy)
      await demoRoundTrip(['npx', 'osb-backup-agent'], copy)
    } finally {
      await agent.stop()
    }
  })

  it('the release tarball, unpacked into an empty folder, runs the agent and the CLI without the repository', {
    timeout: 600_000,
  }, async () => {
    const built = execFileSync('npm', ['run', '-s', 'release'], { cwd: copy, env: SHELL_ENV, encoding: 'utf8', timeout: 300_000 })
      .trim()
      .split('\n')
      .at(-1) as string
    const unpacked = join(work, 'release')
    mkdirSync(unpacked)
    execFileSync('tar', ['-C', unpacked, '-xzf', join(copy, built)])
    await rm(copy, { recursive: true, force: true }) // no repository node_modules from here on
    const [name] = execFileSync('ls', [unpacked], { encoding: 'utf8' }).trim().split('\n')
    const bin = join(unpacked, name as string, 'bin', 'osb-backup-agent')
    const runDir = join(work, 'run')
    mkdirSync(runDir)
    const released = await startDemo([bin, 'serve'], runDir)
    try {
      await checkDemoStart(released, runDir)
      await demoRoundTrip([bin], runDir)
    } finally {
      await released.stop()
    }
  })
})
