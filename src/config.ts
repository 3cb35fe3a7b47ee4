// Reads the agent's settings from the environment once, with the old agent's variable names.
// Everything else receives the typed Config and never looks at process.env itself.
//
// Two kinds of problems: a missing required setting (or half a TLS setup) stops the start
// (ConfigError), while a value that cannot be parsed falls back to its default with a warning, as
// the old agent did: a typo in an optional setting must not turn into an outage.

import { isIP } from 'node:net'

export interface Config {
  clientUsername: string
  clientPassword: string
  clientPort: number
  clientHost: string
  directoryBackup: string
  directoryRestore: string
  scriptsPath: string
  allowedToDeleteFiles: boolean
  skipStorage: boolean
  defaultS3Endpoint: string
  maxJobNumber: number
  scriptEnvPassthrough: string[]
  scriptLogMaxBytes: number
  logLevel: string
  caFile: string | undefined
  swiftRegion: string | undefined
  swiftSegmentBytes: number
  swiftSegmentThresholdBytes: number
  /** PEM files that switch the API to HTTPS; both or neither (checked by loadConfig). */
  tlsCertFile: string | undefined
  tlsKeyFile: string | undefined
  /** PEM CA bundle: when set, clients must present a certificate it signed. */
  tlsClientCaFile: string | undefined
  /** Pass the database password and encryption key as positional arguments (old scripts). */
  scriptSecretArgs: boolean
  /** Failed logins per address per minute before it is locked out; 0 turns throttling off. */
  authMaxFailures: number
  /** Addresses (or CIDR ranges) never locked out: the manager. */
  authThrottleExempt: string[]
  /** Group name or gid given to job directories and the files the agent writes. */
  jobGroup: string | undefined
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Env = Record<string, string | undefined>

interface Setting<K extends keyof Config> {
  key: K
  env: string
  /** undefined marks a required setting */
  fallback: Config[K] | undefined
  parse: (raw: string) => Config[K] | undefined
}

const text = (raw: string): string | undefined => (raw === '' ? undefined : raw)
const flag = (raw: string): boolean | undefined => {
  const v = raw.trim().toLowerCase()
  if (v === 'true' || v === '1' || v === 'yes') return true
  if (v === 'false' || v === '0' || v === 'no') return false
  return undefined
}
const integer = (min: number, max: number) => (raw: string): number | undefined => {
  if (!/^\s*\d+\s*$/.test(raw)) return undefined
  const n = Number(raw)
  return n >= min && n <= max ? n : undefined
}
const list = (raw: string): string[] | undefined =>
  raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
/** A list of IP addresses or CIDR ranges; one bad entry rejects the whole value. */
const addresses = (raw: string): string[] | undefined => {
  const entries = list(raw) ?? []
  return entries.every(isAddressOrRange) ? entries : undefined
}
function isAddressOrRange(entry: string): boolean {
  const [address, bits, extra] = entry.split('/')
  if (extra !== undefined || address === undefined) return false
  const family = isIP(address)
  if (family === 0) return false
  if (bits === undefined) return true
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}
const GiB = 1024 * 1024 * 1024
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const logLevel = (raw: string): string | undefined => {
  const v = raw.trim().toLowerCase()
  return LOG_LEVELS.includes(v) ? v : undefined
}

function setting<K extends keyof Config>(
  key: K,
  env: string,
  fallback: Config[K] | undefined,
  parse: (raw: string) => Config[K] | undefined,
): Setting<K> {
  return { key, env, fallback, parse }
}

/** The configuration table of SPEC §6; the README keeps the same table for operators. */
export const SETTINGS = [
  setting('clientUsername', 'client_username', undefined, text),
  setting('clientPassword', 'client_password', undefined, text),
  setting('clientPort', 'client_port', 8000, integer(0, 65535)),
  setting('clientHost', 'client_host', '0.0.0.0', text),
  setting('directoryBackup', 'directory_backup', undefined, text),
  setting('directoryRestore', 'directory_restore', undefined, text),
  setting('scriptsPath', 'scripts_path', '/var/vcap/jobs/backup-agent/backup', text),
  setting('allowedToDeleteFiles', 'allowed_to_delete_files', false, flag),
  setting('skipStorage', 'skip_storage', false, flag),
  setting('defaultS3Endpoint', 'default_s3_endpoint', 's3.amazonaws.com', text),
  setting('maxJobNumber', 'max_job_number', 10, integer(1, 10_000)),
  setting('scriptEnvPassthrough', 'script_env_passthrough', ['PATH', 'LD_LIBRARY_PATH', 'LANG', 'TZ', 'HOME'], list),
  setting('scriptLogMaxBytes', 'script_log_max_bytes', 65536, integer(0, 16 * 1024 * 1024)),
  setting('logLevel', 'log_level', 'info', logLevel),
  setting('caFile', 'ca_file', undefined as string | undefined, text),
  setting('swiftRegion', 'swift_region', undefined as string | undefined, text),
  setting('swiftSegmentBytes', 'swift_segment_bytes', GiB, integer(1024 * 1024, 5 * GiB)),
  setting('swiftSegmentThresholdBytes', 'swift_segment_threshold_bytes', GiB, integer(0, 5 * GiB)),
  setting('tlsCertFile', 'tls_cert_file', undefined as string | undefined, text),
  setting('tlsKeyFile', 'tls_key_file', undefined as string | undefined, text),
  setting('tlsClientCaFile', 'tls_client_ca_file', undefined as string | undefined, text),
  setting('scriptSecretArgs', 'script_secret_args', true, flag),
  setting('authMaxFailures', 'auth_max_failures', 10, integer(0, 1000)),
  setting('authThrottleExempt', 'auth_throttle_exempt', [] as string[], addresses),
  setting('jobGroup', 'job_group', undefined as string | undefined, text),
]

/** Settings that may be absent without a default (no start-up error). */
const OPTIONAL: ReadonlySet<keyof Config> = new Set(['caFile', 'swiftRegion', 'tlsCertFile', 'tlsKeyFile', 'tlsClientCaFile', 'jobGroup'])

export interface LoadedConfig {
  config: Config
  warnings: string[]
}

export function loadConfig(env: Env): LoadedConfig {
  const values: Record<string, unknown> = {}
  const warnings: string[] = []
  const missing: string[] = []
  for (const s of SETTINGS) {
    const raw = env[s.env]
    const parsed = raw === undefined ? undefined : s.parse(raw)
    if (parsed !== undefined) {
      values[s.key] = parsed
      continue
    }
    if (s.fallback === undefined && !OPTIONAL.has(s.key)) {
      missing.push(s.env)
      continue
    }
    // Only name the variable, never echo its value: it could be a misplaced secret.
    if (raw !== undefined && raw !== '') warnings.push(`${s.env}: cannot use the value given; using the default ${JSON.stringify(s.fallback)}`)
    values[s.key] = s.fallback
  }
  if (missing.length > 0) {
    throw new ConfigError(`missing required setting(s): ${missing.join(', ')} (set them as environment variables)`)
  }
  const config = values as unknown as Config
  // Half a TLS setup stops the start: falling back to plain HTTP would quietly drop the
  // protection the operator asked for.
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new ConfigError('tls_cert_file and tls_key_file must be set together (or neither, for plain HTTP)')
  }
  if (config.tlsClientCaFile !== undefined && config.tlsCertFile === undefined) {
    throw new ConfigError('tls_client_ca_file needs tls_cert_file and tls_key_file (client certificates only exist with TLS)')
  }
  return { config, warnings }
}
