// The trigger body of `backup` and `restore`: read from a JSON file (--body) or built from flags;
// flags given beside --body override its fields.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { CliError, EXIT, type Kind } from './client.ts'

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
  'skip-storage'?: boolean | undefined
  host?: string | undefined
  'db-user'?: string | undefined
  database?: string | undefined
  param?: string[] | undefined
  compression?: boolean | undefined
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
 * password from OSB_DB_PASSWORD, the S3 secret from OSB_S3_AUTH_SECRET, the encryption key from
 * OSB_ENCRYPTION_KEY, or from the --body file.
 */
export async function triggerBody(kind: Kind, flags: BodyFlags, env: Record<string, string | undefined>): Promise<Record<string, any>> {
  let body: Record<string, any> = {}
  if (flags.body !== undefined) {
    let text: string
    try {
      text = await readFile(flags.body, 'utf8')
    } catch (error) {
      throw new CliError(`cannot read the JSON body ${flags.body}: ${(error as Error).message}`, EXIT.usage)
    }
    try {
      body = JSON.parse(text)
    } catch (error) {
      throw new CliError(`${flags.body} is not valid JSON${syntaxPlace(error)}`, EXIT.usage)
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new CliError(`${flags.body} must hold a JSON object`, EXIT.usage)
  }
  const set = (target: Record<string, any>, key: string, value: unknown) => {
    if (value !== undefined) target[key] = value
  }
  set(body, 'id', flags.id)
  body.id ??= newJobId()
  set(body, 'compression', flags.compression)
  set(body, 'encryption_key', env.OSB_ENCRYPTION_KEY)

  const destination: Record<string, any> = (body.destination ??= {})
  set(destination, 'type', flags.type?.toUpperCase())
  destination.type ??= 'LOCAL'
  set(destination, 'filenamePrefix', flags.prefix)
  set(destination, 'filename', flags.filename)
  set(destination, 'bucket', flags.bucket)
  set(destination, 'endpoint', flags.endpoint)
  set(destination, 'region', flags.region)
  set(destination, 'authKey', flags['auth-key'])
  set(destination, 'authSecret', env.OSB_S3_AUTH_SECRET)
  set(destination, 'useSSL', flags['use-ssl'])
  set(destination, 'skipStorage', flags['skip-storage'])
  if (kind === 'restore' && !destination.filename && !destination.skipStorage) {
    throw new CliError("restore needs --filename (the object to restore, as `list` or the backup's polling body shows it)", EXIT.usage)
  }

  const database: Record<string, any> = (body[kind] ??= {})
  set(database, 'host', flags.host)
  database.host ??= 'localhost'
  set(database, 'username', flags['db-user'])
  database.username ??= 'demo'
  set(database, 'password', env.OSB_DB_PASSWORD)
  database.password ??= ''
  set(database, 'database', flags.database)
  database.database ??= 'demo'
  if (flags.param && flags.param.length > 0) {
    // The body's own parameters stay, in either form the agent takes (a list, or one object).
    const given = database.parameters
    const parameters: unknown[] = Array.isArray(given)
      ? given
      : given && typeof given === 'object'
        ? Object.entries(given).map(([k, v]) => ({ [k]: v }))
        : []
    for (const pair of flags.param) {
      const eq = pair.indexOf('=')
      // not quoted back: what was typed may be a value, and values may be secrets
      if (eq <= 0) throw new CliError(`--param takes name=value, with a name before the first =`, EXIT.usage)
      parameters.push({ [pair.slice(0, eq)]: pair.slice(eq + 1) })
    }
    database.parameters = parameters
  }
  return body
}

/**
 * Where JSON.parse stopped, without its excerpt: the excerpt (and the token it names) are pieces
 * of the file, which holds the passwords and keys.
 */
function syntaxPlace(error: unknown): string {
  const place = /\(line \d+ column \d+\)/.exec((error as Error).message)?.[0]
  return place ? ` ${place}` : ''
}
