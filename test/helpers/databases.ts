// Real database servers from Debian packages, started by the tests on 127.0.0.1 in temp dirs and
// stopped by pid. A missing package fails the test loudly (npm test installs them: test/servers/setup.sh).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Server {
  port: number
  /** Runs a client command (argv) and returns its stdout. */
  client: (argv: string[], env?: Record<string, string>) => string
  stop: () => Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

function need(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: apt-get install ${pkg} (npm test as root does: test/servers/setup.sh)`)
  return path
}

function run(argv: string[], env: Record<string, string> = {}): string {
  const [cmd, ...args] = argv
  return execFileSync(cmd as string, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Starts a server in the foreground (its pid is the server's) and waits until `ready` passes. */
async function startProcess(argv: string[], ready: () => boolean, what: string): Promise<{ child: ChildProcess; output: () => string }> {
  const [cmd, ...args] = argv
  const child = spawn(cmd as string, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()))
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}:\n${output}`)
    try {
      if (ready()) return { child, output: () => output }
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${what} did not come up in 60 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  process.kill(child.pid as number, signal)
  const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid as number, 'SIGKILL'), 20_000)
  await exited
  clearTimeout(timer)
}

/** PostgreSQL (Debian `postgresql`), run as the `postgres` user (it refuses root), password auth over TCP. */
export async function startPostgres(user: string, password: string): Promise<Server> {
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort() : []
  const bin = need(join('/usr/lib/postgresql', versions.at(-1) ?? 'missing', 'bin'), 'postgresql')
  const dir = await mkdtemp(join(tmpdir(), 'osb-pg-'))
  const uid = Number(run(['id', '-u', 'postgres']).trim())
  const gid = Number(run(['id', '-g', 'postgres']).trim())
  await chown(dir, uid, gid)
  const asPostgres = ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--']
  const pwfile = join(dir, 'pw')
  await writeFile(pwfile, `${password}\n`)
  await chown(pwfile, uid, gid)
  run([
    ...asPostgres,
    join(bin, 'initdb'),
    '-D',
    join(dir, 'data'),
    '-U',
    user,
    `--pwfile=${pwfile}`,
    '--auth-host=scram-sha-256',
    '--auth-local=trust',
  ])
  const port = await freePort()
  const client = (argv: string[], env: Record<string, string> = {}) =>
    run(argv, { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: user, PGPASSWORD: password, ...env })
  const { child } = await startProcess(
    [...asPostgres, join(bin, 'postgres'), '-D', join(dir, 'data'), '-h', '127.0.0.1', '-p', String(port), '-k', dir],
    () => {
      client(['pg_isready', '-q'])
      return true
    },
    'postgres',
  )
  return {
    port,
    client,
    async stop() {
      await stopProcess(child, 'SIGINT') // fast shutdown
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** MariaDB (Debian `mariadb-server`), a user with a password over TCP. */
export async function startMariadb(user: string, password: string): Promise<Server> {
  need('/usr/sbin/mariadbd', 'mariadb-server')
  const dir = await mkdtemp(join(tmpdir(), 'osb-mariadb-'))
  run([
    'mariadb-install-db',
    '--no-defaults',
    `--datadir=${join(dir, 'data')}`,
    '--user=root',
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ])
  const port = await freePort()
  const socket = join(dir, 'sock')
  const root = (sql: string) => run(['mariadb', '--no-defaults', `--socket=${socket}`, '-uroot', '-e', sql])
  const { child } = await startProcess(
    [
      '/usr/sbin/mariadbd',
      '--no-defaults',
      `--datadir=${join(dir, 'data')}`,
      `--socket=${socket}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      '--user=root',
      `--pid-file=${join(dir, 'pid')}`,
      '--skip-log-bin',
    ],
    () => {
      root('SELECT 1')
      return true
    },
    'mariadbd',
  )
  root(`CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}'; GRANT ALL ON *.* TO '${user}'@'127.0.0.1'; FLUSH PRIVILEGES;`)
  return {
    port,
    client: (argv, env = {}) => run(argv, { MYSQL_TCP_PORT: String(port), MYSQL_PWD: password, ...env }),
    async stop() {
      await stopProcess(child)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Redis (Debian `redis-server`) with a password and the debug command allowed locally (for the restore). */
export async function startRedis(password: string): Promise<Server> {
  need('/usr/bin/redis-server', 'redis-server')
  const dir = await mkdtemp(join(tmpdir(), 'osb-redis-'))
  const port = await freePort()
  const client = (argv: string[], env: Record<string, string> = {}) => run(argv, { REDISCLI_AUTH: password, ...env })
  const { child } = await startProcess(
    [
      '/usr/bin/redis-server',
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      dir,
      '--dbfilename',
      'dump.rdb',
      '--save',
      '',
      '--appendonly',
      'no',
      '--requirepass',
      password,
      '--enable-debug-command',
      'local',
      '--daemonize',
      'no',
    ],
    () => client(['redis-cli', '-p', String(port), 'PING']).trim() === 'PONG',
    'redis-server',
  )
  return {
    port,
    client,
    async stop() {
      await stopProcess(child)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
