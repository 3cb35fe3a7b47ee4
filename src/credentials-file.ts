// The demo's credentials file (`var/credentials`): `client_username=…` and `client_password=…`
// lines, mode 0600. The agent writes it on a demo start; the CLI reads it to talk to that agent.
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
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
  const text = await readFile(path, 'utf8').catch(() => undefined)
  return text === undefined ? undefined : parseCredentials(text)
}

/**
 * The demo's credentials: those in `path` when it holds valid ones, else new random ones
 * written there (folder 0700, file 0600) before the agent listens.
 */
export async function ensureCredentials(path: string): Promise<{ credentials: Credentials; created: boolean }> {
  const existing = await readCredentials(path)
  if (existing) {
    await chmod(path, 0o600)
    return { credentials: existing, created: false }
  }
  const credentials = { username: DEMO_USERNAME, password: randomBytes(18).toString('base64url') }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, `client_username=${credentials.username}\nclient_password=${credentials.password}\n`, { mode: 0o600 })
  await chmod(path, 0o600)
  return { credentials, created: true }
}
