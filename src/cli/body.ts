// The trigger body of `backup`, `restore` and `verify`: read from a JSON file (--body) or built
// from flags; flags given beside --body override its fields. A verify body is a restore body
// without the database section.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { CliError, EXIT, type Kind } from './client.ts'
import { encryptionKeyFrom } from './key.ts'

export interface BodyFlags {
  body?: string | undefined
  id?: string | undefined
  type?: string | undefined
  prefix?: string | undefined
  filename?: string | undefined
  bucket?: string | undefined
  endpoint?: string | undefined
  region?: string | undefined
  'auth-key'?: string | undefined
  'use-ssl'?: boolean | undefined
  'auth-url'?: string | undefined
  container?: string | undefined
  'swift-user'?: string | undefined
  domain?: string | undefined
  project?: string | undefined
  'skip-storage'?: boolean | undefined
  host?: string | undefined
  'db-user'?: string | undefined
  database?: string | undefined
  param?: string[] | undefined
  compression?: boolean | undefined
  'key-file'?: string | undefined
  /** verify: the caller fills in the file name (the newest backup's), so none is needed here. */
  newest?: boolean | undefined
}

/** A fresh job id: the time and some randomness, within the agent's id rules. */
export function newJobId(): string {
  return `cli-${new Date()
    .toISOString()
    .replace(/[-:.TZ]/g, '')
    .slice(0, 14)}-${randomBytes(3).toString('hex')}`
}

/**
 * Secrets never come from flags (they would show in `ps` and shell history): the database
 * password from OSB_DB_PASSWORD, the S3 secret from OSB_S3_AUTH_SECRET, the Swift password from
 * OSB_SWIFT_PASSWORD, the encryption key from --key-file or OSB_ENCRYPTION_KEY, or from the --body file.
 */
export async function triggerBody(kind: Kind, flags: BodyFlags, env: Record<string, string | undefined>): Promise<Record<string, any>> {
  const body = flags.body === undefined ? {} : await bodyFile(flags.body)
  set(body, 'id', flags.id)
  body.id ??= newJobId()
  if (kind !== 'verify') set(body, 'compression', flags.compression)
  set(body, 'encryption_key', await encryptionKeyFrom(flags['key-file'], env))
  const destination = withDestination(body, flags, env)
  if (flags.newest && flags.filename !== undefined) throw new CliError('give --filename or --newest, not both', EXIT.usage)
  if (kind !== 'backup' && !destination.filename && !destination.skipStorage && !(kind === 'verify' && flags.newest)) {
    throw new CliError(`${kind} needs --filename (the object to ${kind}, as \`list\` or the backup's polling body shows it)`, EXIT.usage)
  }
  // A verify runs no script: it has no database (the agent ignores one sent).
  if (kind !== 'verify') withDatabase(body, kind, flags, env)
  return body
}

function set(target: Record<string, any>, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value
}

async function bodyFile(path: string): Promise<Record<string, any>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new CliError(`cannot read the JSON body ${path}: ${(error as Error).message}`, EXIT.usage)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new CliError(`${path} is not valid JSON${syntaxPlace(error)}`, EXIT.usage)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CliError(`${path} must hold a JSON object`, EXIT.usage)
  return body as Record<string, any>
}

const S3_FLAGS = ['bucket', 'endpoint', 'region', 'auth-key', 'use-ssl'] as const
const SWIFT_FLAGS = ['auth-url', 'container', 'swift-user', 'domain', 'project'] as const

/** The body's destination, flags over its fields; LOCAL unless a type is given. */
function withDestination(body: Record<string, any>, flags: BodyFlags, env: Record<string, string | undefined>): Record<string, any> {
  const destination: Record<string, any> = (body.destination ??= {})
  set(destination, 'type', flags.type?.toUpperCase())
  destination.type ??= 'LOCAL'
  set(destination, 'filenamePrefix', flags.prefix)
  set(destination, 'filename', flags.filename)
  set(destination, 'skipStorage', flags['skip-storage'])
  const swift = destination.type === 'SWIFT'
  const misplaced = (swift ? S3_FLAGS : SWIFT_FLAGS).filter((name) => flags[name] !== undefined)
  if (misplaced.length > 0)
    throw new CliError(
      `--${misplaced.join(', --')} ${swift ? 'are for --type S3' : 'are for --type SWIFT'}, not ${destination.type}`,
      EXIT.usage,
    )
  if (swift) {
    set(destination, 'authUrl', flags['auth-url'])
    set(destination, 'container_name', flags.container)
    set(destination, 'username', flags['swift-user'])
    set(destination, 'password', env.OSB_SWIFT_PASSWORD)
    set(destination, 'domain', flags.domain)
    set(destination, 'project_name', flags.project)
    return destination
  }
  set(destination, 'bucket', flags.bucket)
  set(destination, 'endpoint', flags.endpoint)
  set(destination, 'region', flags.region)
  set(destination, 'authKey', flags['auth-key'])
  set(destination, 'authSecret', env.OSB_S3_AUTH_SECRET)
  set(destination, 'useSSL', flags['use-ssl'])
  return destination
}

function withDatabase(body: Record<string, any>, kind: Kind, flags: BodyFlags, env: Record<string, string | undefined>): void {
  const database: Record<string, any> = (body[kind] ??= {})
  set(database, 'host', flags.host)
  database.host ??= 'localhost'
  set(database, 'username', flags['db-user'])
  database.username ??= 'demo'
  set(database, 'password', env.OSB_DB_PASSWORD)
  database.password ??= ''
  set(database, 'database', flags.database)
  database.database ??= 'demo'
  if (flags.param && flags.param.length > 0) database.parameters = withParameters(database.parameters, flags.param)
}

/** The body's own parameters stay, in either form the agent takes (a list, or one object); --param adds to them. */
function withParameters(given: unknown, pairs: string[]): unknown[] {
  const parameters: unknown[] = Array.isArray(given)
    ? given
    : given && typeof given === 'object'
      ? Object.entries(given).map(([k, v]) => ({ [k]: v }))
      : []
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    // not quoted back: what was typed may be a value, and values may be secrets
    if (eq <= 0) throw new CliError(`--param takes name=value, with a name before the first =`, EXIT.usage)
    parameters.push({ [pair.slice(0, eq)]: pair.slice(eq + 1) })
  }
  return parameters
}

/**
 * Where JSON.parse stopped, without its excerpt: the excerpt (and the token it names) are pieces
 * of the file, which holds the passwords and keys.
 */
function syntaxPlace(error: unknown): string {
  const place = /\(line \d+ column \d+\)/.exec((error as Error).message)?.[0]
  return place ? ` ${place}` : ''
}
