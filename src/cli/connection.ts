// Where the agent is and how to log in, from (first wins) flags, the environment, then the
// credentials file the demo start writes (./var/credentials).
import { resolve } from 'node:path'
import { readCredentials, type Credentials } from '../credentials-file.ts'

export interface ConnectionFlags {
  url?: string | undefined
  username?: string | undefined
  password?: string | undefined
  credentials?: string | undefined
}

export interface Connection {
  url: string
  credentials: Credentials | undefined
  /** Where the credentials came from, for error messages (never the credentials themselves). */
  source: string
}

export const DEFAULT_URL = 'http://127.0.0.1:8000'
export const DEFAULT_CREDENTIALS_FILE = 'var/credentials'

export async function resolveConnection(flags: ConnectionFlags, env: Record<string, string | undefined>, cwd: string): Promise<Connection> {
  const url = (flags.url ?? env.OSB_AGENT_URL ?? DEFAULT_URL).replace(/\/+$/, '')
  const username = flags.username ?? env.OSB_AGENT_USERNAME
  const password = flags.password ?? env.OSB_AGENT_PASSWORD
  if (username !== undefined && password !== undefined) {
    return {
      url,
      credentials: { username, password },
      source: flags.password !== undefined ? 'the command line' : 'OSB_AGENT_USERNAME/OSB_AGENT_PASSWORD',
    }
  }
  const file = resolve(cwd, flags.credentials ?? env.OSB_AGENT_CREDENTIALS ?? DEFAULT_CREDENTIALS_FILE)
  const fromFile = await readCredentials(file)
  return {
    url,
    credentials: fromFile,
    source: fromFile ? file : `nowhere (no --username/--password, no OSB_AGENT_USERNAME/OSB_AGENT_PASSWORD, no ${file})`,
  }
}
