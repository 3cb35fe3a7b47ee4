// osb-backup-agent: `serve` runs the agent; the other commands talk to a running one over its
// HTTP API. node:util parseArgs per command, no framework: each command declares its options
// and its help text in one place.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { AgentClient, CliError, EXIT, KINDS, refused, type Kind } from './client.ts'
import { triggerBody, type BodyFlags } from './body.ts'
import { resolveConnection, DEFAULT_URL, DEFAULT_CREDENTIALS_FILE } from './connection.ts'
import { describeJob, waitFor as follow, type Io } from './follow.ts'
import { newestBackup } from './newest.ts'

type Options = NonNullable<ParseArgsConfig['options']>
type Values = Record<string, string | boolean | string[] | undefined>

export type { Io } from './follow.ts'

interface Command {
  summary: string
  usage: string
  /** Option help lines, beside the connection options every client command takes. */
  help: string[]
  options: Options
  client: boolean
  run: (values: Values, args: string[], io: Io) => Promise<number>
}

const CONNECTION_OPTIONS: Options = {
  url: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  credentials: { type: 'string' },
  json: { type: 'boolean' },
}
const CONNECTION_HELP = [
  `--url URL            the agent (env OSB_AGENT_URL; default ${DEFAULT_URL})`,
  '--username, --password  login (env OSB_AGENT_USERNAME, OSB_AGENT_PASSWORD)',
  `--credentials FILE   client_username=/client_password= lines (env OSB_AGENT_CREDENTIALS; default ./${DEFAULT_CREDENTIALS_FILE})`,
  "--json               print JSON (the agent's bodies) instead of text",
]
const KIND_OPTION: Options = { kind: { type: 'string' } }
const KIND_HELP = `--kind ${KINDS.join('|')}  which kind of job (default: look in each)`

/** Where the object is: the flags `backup`, `restore` and `verify` share. */
const DESTINATION_OPTIONS: Options = {
  body: { type: 'string' },
  id: { type: 'string' },
  type: { type: 'string' },
  prefix: { type: 'string' },
  filename: { type: 'string' },
  bucket: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'auth-key': { type: 'string' },
  'use-ssl': { type: 'boolean' },
  'auth-url': { type: 'string' },
  container: { type: 'string' },
  'swift-user': { type: 'string' },
  domain: { type: 'string' },
  project: { type: 'string' },
  'key-file': { type: 'string' },
  wait: { type: 'boolean' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
}
const DESTINATION_HELP = [
  '--body FILE          the trigger body as JSON (flags below override its fields)',
  '--id ID              job id (default: generated, printed)',
  '--type LOCAL|S3|SWIFT  destination type (default LOCAL)',
  '--prefix P/          filenamePrefix (LOCAL: folder under local_storage_root; S3: key prefix)',
  '--bucket, --endpoint, --region, --auth-key, --use-ssl  S3 destination (secret: env OSB_S3_AUTH_SECRET)',
  '--auth-url, --container, --swift-user, --domain, --project  SWIFT destination (password: env OSB_SWIFT_PASSWORD)',
]
const KEY_HELP = '--key-file FILE      the encryption key: passphrase or PEM key (else env OSB_ENCRYPTION_KEY; never a flag value)'
const FOLLOW_HELP = [
  '--wait               then wait for the job like `wait` (exit 0 SUCCEEDED, 1 FAILED)',
  '--interval S, --timeout S  with --wait: as for `wait`',
]

const TRIGGER_OPTIONS: Options = {
  ...DESTINATION_OPTIONS,
  'skip-storage': { type: 'boolean' },
  host: { type: 'string' },
  'db-user': { type: 'string' },
  database: { type: 'string' },
  param: { type: 'string', multiple: true },
  compression: { type: 'boolean' },
}
const TRIGGER_HELP = [
  ...DESTINATION_HELP,
  '--filename NAME      restore: the object to restore',
  '--skip-storage       the scripts handle storage themselves',
  '--host, --db-user, --database  the database (password: env OSB_DB_PASSWORD)',
  '--param name=value   a request parameter (repeatable; scripts get it as a variable; lower-case names unless the agent lists the name in script_parameter_names)',
  '--compression        ask the scripts to compress',
  KEY_HELP,
  ...FOLLOW_HELP,
]

/** What `backup`, `restore` and `verify` do once the agent took the job: follow it, or say how to. */
async function started(client: AgentClient, kind: Kind, id: string, values: Values, io: Io): Promise<number> {
  if (values.wait) return waitFor(client, id, kind, values, io)
  if (values.json) io.out(JSON.stringify({ kind, id }))
  else io.out(`${kind} ${id} started; follow it with: osb-backup-agent wait ${id}`)
  return EXIT.ok
}

function triggerCommand(kind: 'backup' | 'restore'): Command {
  return {
    summary: kind === 'backup' ? 'start a backup' : 'start a restore (needs --filename or a --body with destination.filename)',
    usage: `osb-backup-agent ${kind} [options]`,
    help: TRIGGER_HELP,
    options: TRIGGER_OPTIONS,
    client: true,
    async run(values, _args, io) {
      const body = await triggerBody(kind, values as BodyFlags, io.env)
      const client = await clientFor(values, io)
      const reply = await client.request(kind === 'backup' ? 'POST' : 'PUT', `/${kind}`, body)
      if (reply.status !== 201) throw refused(reply)
      return started(client, kind, body.id, values, io)
    },
  }
}

const verifyCommand: Command = {
  summary: 'check a stored backup without restoring it: read it to its end, match its SHA-256 (.osb: format, frames with a key)',
  usage: 'osb-backup-agent verify (--filename NAME | --newest) [options]',
  help: [
    ...DESTINATION_HELP,
    "--filename NAME      the object to verify (as `list` or the backup's polling body shows it)",
    '--newest             the newest SUCCEEDED backup of this agent to --type (and its prefix, unless --prefix)',
    KEY_HELP,
    '                     without a key an encrypted .osb object is checked by its SHA-256 and format, its frames not opened',
    ...FOLLOW_HELP,
  ],
  options: { ...DESTINATION_OPTIONS, newest: { type: 'boolean' } },
  client: true,
  async run(values, _args, io) {
    const body = await triggerBody('verify', values as BodyFlags, io.env)
    const client = await clientFor(values, io)
    if (values.newest) {
      const destination = body.destination
      const type = String(destination.type).toUpperCase()
      const newest = await newestBackup(client, type)
      destination.filename = newest.filename
      destination.filenamePrefix ??= newest.filenamePrefix
      if (!values.json) io.err(`verifying ${newest.filename}, the newest ${type} backup (${newest.id})\n`)
    }
    const reply = await client.request('POST', '/verify', body)
    if (reply.status !== 201) throw refused(reply)
    return started(client, 'verify', body.id, values, io)
  },
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: 'run the agent (configuration from the environment; none at all: the demo under ./var)',
    usage: 'osb-backup-agent serve',
    help: [],
    options: {},
    client: false,
    async run() {
      await import('../main.ts')
      return new Promise<number>(() => {}) // the agent exits the process itself
    },
  },
  backup: triggerCommand('backup'),
  restore: triggerCommand('restore'),
  verify: verifyCommand,
  status: {
    summary: 'show a job',
    usage: 'osb-backup-agent status <id> [--kind KIND]',
    help: [KIND_HELP],
    options: KIND_OPTION,
    client: true,
    async run(values, args, io) {
      const { kind, body } = await (await clientFor(values, io)).poll(oneId(args), kindOf(values))
      if (values.json) io.out(JSON.stringify(body))
      else io.out(describeJob(kind, body))
      return EXIT.ok
    },
  },
  wait: {
    summary: 'follow a job until it ends: progress and stage; exit 0 SUCCEEDED, 1 FAILED',
    usage: 'osb-backup-agent wait <id> [--kind KIND] [--interval S] [--timeout S]',
    help: [
      KIND_HELP,
      '--interval S         seconds between polls (default 1)',
      '--timeout S          give up after S seconds (exit 1; default: never)',
    ],
    options: { ...KIND_OPTION, interval: { type: 'string' }, timeout: { type: 'string' } },
    client: true,
    async run(values, args, io) {
      return waitFor(await clientFor(values, io), oneId(args), kindOf(values), values, io)
    },
  },
  list: {
    summary: 'list jobs, newest first',
    usage: 'osb-backup-agent list [--kind KIND] [--status S] [--limit N] [--cursor C]',
    help: [
      `--kind ${KINDS.join('|')}  (default backup)`,
      '--status RUNNING|SUCCEEDED|FAILED',
      '--limit N            jobs per page (default 100)',
      '--cursor C           the next page (printed after a full page)',
    ],
    options: { ...KIND_OPTION, status: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' } },
    client: true,
    async run(values, _args, io) {
      const kind = kindOf(values) ?? 'backup'
      const query = new URLSearchParams()
      for (const name of ['status', 'limit', 'cursor'] as const) if (typeof values[name] === 'string') query.set(name, values[name])
      const reply = await (await clientFor(values, io)).request('GET', `/${kind}${query.size > 0 ? `?${query}` : ''}`)
      if (reply.status !== 200) throw refused(reply)
      if (values.json) {
        io.out(JSON.stringify(reply.body))
        return EXIT.ok
      }
      for (const job of reply.body.jobs) {
        io.out([job.id, job.status, job.state, job.start_time, job.filename || '-', job.error_message ?? ''].join('\t').trimEnd())
      }
      if (reply.body.jobs.length === 0) io.out(`no ${kind} jobs`)
      if (reply.body.next_cursor) io.out(`more: osb-backup-agent list --kind ${kind} --cursor ${reply.body.next_cursor}`)
      return EXIT.ok
    },
  },
  decrypt: {
    summary: 'decode a streamed (.osb) backup by hand: authenticate, decrypt, decompress, check its SHA-256 trailer (no agent needed)',
    usage: 'osb-backup-agent decrypt [FILE|-] [--out FILE] [--key-file FILE]',
    help: [
      'FILE                 the .osb object (default: standard input)',
      '--out FILE           where the dump goes (default: standard output)',
      '--key-file FILE      the passphrase or PEM private key (else env OSB_ENCRYPTION_KEY)',
    ],
    options: { out: { type: 'string' }, 'key-file': { type: 'string' } },
    client: false,
    async run(values, args, io) {
      if (args.length > 1) throw new CliError('give at most one input file', EXIT.usage)
      try {
        // loaded here: the codec is not needed by `serve` or the client commands
        const { decrypt } = await import('./decrypt.ts')
        await decrypt({
          input: args[0],
          output: values.out as string | undefined,
          keyFile: values['key-file'] as string | undefined,
          env: io.env,
          stdin: process.stdin,
          stdout: process.stdout,
        })
      } catch (error) {
        throw new CliError(`decrypt failed: ${(error as Error).message}`, EXIT.failed)
      }
      return EXIT.ok
    },
  },
  cancel: {
    summary: 'cancel a running job (its cleanup and unlock still run)',
    usage: 'osb-backup-agent cancel <id> [--kind KIND]',
    help: [KIND_HELP],
    options: KIND_OPTION,
    client: true,
    async run(values, args, io) {
      const client = await clientFor(values, io)
      const id = oneId(args)
      const { kind } = await client.poll(id, kindOf(values))
      const reply = await client.request('POST', `/${kind}/${encodeURIComponent(id)}/cancel`)
      if (reply.status !== 202)
        throw refused(reply.status === 409 ? { status: 409, body: { message: `${kind} ${id} is not running` } } : reply)
      io.out(values.json ? JSON.stringify({ kind, id, ...reply.body }) : String(reply.body.message))
      return EXIT.ok
    },
  },
}

async function clientFor(values: Values, io: Io): Promise<AgentClient> {
  return new AgentClient(await resolveConnection(values as Record<string, string | undefined>, io.env, io.cwd))
}

function oneId(args: string[]): string {
  if (args.length !== 1 || !args[0]) throw new CliError('give exactly one job id', EXIT.usage)
  return args[0]
}

function kindOf(values: Values): Kind | undefined {
  const kind = values.kind
  if (kind === undefined) return undefined
  const known = KINDS.find((k) => k === kind)
  if (known === undefined) throw new CliError(`--kind is ${KINDS.join(', ')}`, EXIT.usage)
  return known
}

function seconds(values: Values, name: string, fallback: number): number {
  const raw = values[name]
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`--${name} takes a number of seconds`, EXIT.usage)
  return n
}

/** `wait`, or a trigger's --wait: follows the job with the command line's --interval, --timeout and --json. */
function waitFor(client: AgentClient, id: string, kind: Kind | undefined, values: Values, io: Io): Promise<number> {
  const options = {
    intervalMs: seconds(values, 'interval', 1) * 1000,
    timeoutMs: seconds(values, 'timeout', Number.POSITIVE_INFINITY) * 1000,
    json: values.json === true,
  }
  return follow(client, id, kind, options, io)
}

/** The command's options and operands; a usage error, with the command's help, when they do not parse. */
function parseCommandLine(args: string[], options: Options, command: Command) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${helpText(command)}`, EXIT.usage)
  }
}

function helpText(command: Command): string {
  const options = [...command.help, ...(command.client ? CONNECTION_HELP : []), '--help               this text']
  return [`${command.usage}`, '', command.summary, '', 'Options:', ...options.map((o) => `  ${o}`)].join('\n')
}

function overview(): string {
  return [
    'osb-backup-agent <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)}${c.summary}`),
    '',
    "osb-backup-agent <command> --help shows a command's options. Exit codes: 0 ok, 1 the job or",
    'request failed, 2 wrong usage, 3 the agent cannot be reached or refused the login.',
  ].join('\n')
}

export async function runCli(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview())
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  const command = COMMANDS[name]
  if (!command) {
    io.err(`osb-backup-agent: unknown command ${JSON.stringify(name)}\n\n${overview()}\n`)
    return EXIT.usage
  }
  try {
    const options: Options = { ...command.options, ...(command.client ? CONNECTION_OPTIONS : {}), help: { type: 'boolean', short: 'h' } }
    const parsed = parseCommandLine(rest, options, command)
    if (parsed.values.help) {
      io.out(helpText(command))
      return EXIT.ok
    }
    return await command.run(parsed.values as Values, parsed.positionals, io)
  } catch (error) {
    if (!(error instanceof CliError)) throw error
    if (io.tty) io.err('\n')
    io.err(`osb-backup-agent ${name}: ${error.message}\n`)
    return error.exitCode
  }
}
