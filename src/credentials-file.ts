// The demo's credentials file (`var/credentials`): `client_username=…` and `client_password=…`
// lines, mode 0600. The agent writes it on a demo start; the CLI reads it to talk to that agent.
import { crypto } from './util/builtins.ts'
import { constants } from 'node:fs'
import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'

export interface Credentials {
  username: string
  password: string
}

export const DEMO_USERNAME = 'demo'

export function parseCredentials(text: string): Credentials | undefined {
  const values = new Map<string, string>()
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim())
  }
  const username = values.get('client_username')
  const password = values.get('client_password')
  return username && password ? { username, password } : undefined
}

export async function readCredentials(path: string): Promise<Credentials | undefined> {
  const handle = await openOwnFile(path)
  if (!handle) return undefined
  try {
    return parseCredentials(await handle.readFile('utf8'))
  } finally {
    await handle.close()
  }
}

/**
 * The demo's credentials: those in `path` when it holds valid ones, else new random ones
 * written there (folder 0700, file 0600) before the agent listens. The agent runs as root: the
 * file is never reached through a symlink (the new one is created exclusively under a fresh
 * name and renamed over whatever is at `path`, which replaces a link instead of writing through
 * it), and the mode is set on the open file.
 */
export async function ensureCredentials(path: string): Promise<{ credentials: Credentials; created: boolean }> {
  const handle = await openOwnFile(path)
  if (handle) {
    try {
      const existing = parseCredentials(await handle.readFile('utf8'))
      if (existing) {
        await handle.chmod(0o600)
        return { credentials: existing, created: false }
      }
    } finally {
      await handle.close()
    }
  }
  const credentials = { username: DEMO_USERNAME, password: crypto().randomBytes(18).toString('base64url') }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const temporary = `${path}.${crypto().randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(temporary, `client_username=${credentials.username}\nclient_password=${credentials.password}\n`, {
      mode: 0o600,
      flag: 'wx',
    })
    await rename(temporary, path)
  } catch (error) {
    await rm(temporary, { force: true })
    throw error
  }
  return { credentials, created: true }
}

/** The regular file at `path` itself, open for reading; undefined for a link, anything else, or nothing. */
async function openOwnFile(path: string): Promise<FileHandle | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined)
  if (handle && !(await handle.stat()).isFile()) {
    await handle.close()
    return undefined
  }
  return handle
}
