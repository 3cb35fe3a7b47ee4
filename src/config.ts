// Reads the agent's settings from the environment once, with the old agent's variable names.
// Everything else receives the typed Config and never looks at process.env itself.
//
// Two kinds of problems: a missing required setting (or half a TLS setup) stops the start
// (ConfigError), while a value that cannot be parsed falls back to its default with a warning, as
// the old agent did: a typo in an optional setting must not turn into an outage.

import { net } from './util/builtins.ts'

import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { INSTALL_ROOT } from './install-root.ts'
import { DEFAULT_PASSTHROUGH, reservedNameReason } from './scripts/environment.ts'
import type { LogFormatSetting, LogLevel } from './log.ts'

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
  /** Parameter names accepted besides lower-case ones (reserved names stay refused). */
  scriptParameterNames: string[]
  scriptLogMaxBytes: number
  logLevel: LogLevel
  /** auto: human-readable lines on a terminal, JSON lines elsewhere. */
  logFormat: LogFormatSetting
  caFile: string | undefined
  swiftRegion: string | undefined
  swiftSegmentBytes: number
  swiftSegmentThresholdBytes: number
  directoryState: string
  jobRetentionDays: number
  maxJobRecords: number
  scriptTimeoutSeconds: number
  hookTimeoutSeconds: number
  storageRetries: number
  /** Storage hygiene removes only what is older than this (orphaned Swift segments, stale S3 uploads). */
  storageGcGraceHours: number
  shutdownGraceSeconds: number
  requireChecksum: boolean
  /** A backup reads back what it uploaded and checks its digest before it succeeds (src/jobs/verify.ts). */
  verifyAfterUpload: boolean
  streamCompression: 'zstd' | 'gzip'
  localStorageRoot: string
  metricsPublic: boolean
  /** True when no SPEC §6 variable was set: the zero-configuration demo start. */
  demo: boolean
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
const integer =
  (min: number, max: number) =>
  (raw: string): number | undefined => {
    if (!/^\s*\d+\s*$/.test(raw)) return undefined
    const n = Number(raw)
    return n >= min && n <= max ? n : undefined
  }
/** A plain decimal (`0.25`, `24`), no exponent or sign. */
const decimal =
  (min: number, max: number) =>
  (raw: string): number | undefined => {
    if (!/^\s*\d+(\.\d+)?\s*$/.test(raw)) return undefined
    const n = Number(raw)
    return n >= min && n <= max ? n : undefined
  }
const list = (raw: string): string[] | undefined =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
/** A list of environment variable names; one bad entry rejects the whole value. */
const variableNames = (raw: string): string[] | undefined => {
  const entries = list(raw) ?? []
  return entries.every((e) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(e)) ? entries : undefined
}
/** A list of IP addresses or CIDR ranges; one bad entry rejects the whole value. */
const addresses = (raw: string): string[] | undefined => {
  const entries = list(raw) ?? []
  return entries.every(isAddressOrRange) ? entries : undefined
}
function isAddressOrRange(entry: string): boolean {
  const [address, bits, extra] = entry.split('/')
  if (extra !== undefined || address === undefined) return false
  const family = net.isIP(address)
  if (family === 0) return false
  if (bits === undefined) return true
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}
const GiB = 1024 * 1024 * 1024
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const logLevel = (raw: string): LogLevel | undefined => {
  const v = raw.trim().toLowerCase()
  return LOG_LEVELS.find((level) => level === v)
}
const LOG_FORMATS: readonly LogFormatSetting[] = ['auto', 'json', 'pretty']
const logFormat = (raw: string): LogFormatSetting | undefined => {
  const v = raw.trim().toLowerCase()
  return LOG_FORMATS.find((format) => format === v)
}

function setting<K extends keyof Config>(
  key: K,
  env: string,
  fallback: Config[K] | undefined,
  parse: (raw: string) => Config[K] | undefined,
): Setting<K> {
  return { key, env, fallback, parse }
}

/**
 * The storage hygiene pass after each successful backup (src/jobs/storage-hygiene.ts) lists at
 * most this many pages (of up to 10,000 names each in Swift, 1,000 in S3) and stops after this
 * many seconds; what it did not reach waits for the next backup. Documented in the README.
 */
export const STORAGE_GC_MAX_PAGES = 10
export const STORAGE_GC_MAX_SECONDS = 30

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
  setting('scriptEnvPassthrough', 'script_env_passthrough', [...DEFAULT_PASSTHROUGH], list),
  setting('scriptParameterNames', 'script_parameter_names', [] as string[], variableNames),
  setting('scriptLogMaxBytes', 'script_log_max_bytes', 65536, integer(0, 16 * 1024 * 1024)),
  setting('logLevel', 'log_level', 'info', logLevel),
  setting('logFormat', 'log_format', 'auto' as LogFormatSetting, logFormat),
  setting('caFile', 'ca_file', undefined as string | undefined, text),
  setting('swiftRegion', 'swift_region', undefined as string | undefined, text),
  setting('swiftSegmentBytes', 'swift_segment_bytes', GiB, integer(1024 * 1024, 5 * GiB)),
  setting('swiftSegmentThresholdBytes', 'swift_segment_threshold_bytes', GiB, integer(0, 5 * GiB)),
  // '' stands for "a state folder beside directory_backup", resolved in loadConfig
  setting('directoryState', 'directory_state', '', text),
  setting('jobRetentionDays', 'job_retention_days', 14, integer(1, 36_500)),
  setting('maxJobRecords', 'max_job_records', 1000, integer(1, 10_000_000)),
  setting('scriptTimeoutSeconds', 'script_timeout_seconds', 86_400, integer(1, 30 * 86_400)),
  setting('hookTimeoutSeconds', 'hook_timeout_seconds', 600, integer(1, 86_400)),
  setting('storageRetries', 'storage_retries', 5, integer(0, 100)),
  setting('storageGcGraceHours', 'storage_gc_grace_hours', 24, decimal(0, 8760)),
  setting('shutdownGraceSeconds', 'shutdown_grace_seconds', 60, integer(0, 86_400)),
  setting('requireChecksum', 'require_checksum', false, flag),
  setting('verifyAfterUpload', 'verify_after_upload', false, flag),
  setting('streamCompression', 'stream_compression', 'zstd' as const, (raw) => (raw === 'zstd' || raw === 'gzip' ? raw : undefined)),
  setting('localStorageRoot', 'local_storage_root', './var/storage', text),
  setting('metricsPublic', 'metrics_public', false, flag),
  setting('tlsCertFile', 'tls_cert_file', undefined as string | undefined, text),
  setting('tlsKeyFile', 'tls_key_file', undefined as string | undefined, text),
  setting('tlsClientCaFile', 'tls_client_ca_file', undefined as string | undefined, text),
  setting('scriptSecretArgs', 'script_secret_args', true, flag),
  setting('authMaxFailures', 'auth_max_failures', 10, integer(0, 1000)),
  setting('authThrottleExempt', 'auth_throttle_exempt', [] as string[], addresses),
  setting('jobGroup', 'job_group', undefined as string | undefined, text),
]

/**
 * The variables of SPEC §6. While none of them is set the agent starts as a demo (see
 * demoDefaults); as soon as one is, SPEC §6 holds in full: a drop-in replacement must never
 * come up loopback-only or with generated credentials by surprise.
 */
export const SPEC_VARIABLES: readonly string[] = [
  'client_username',
  'client_password',
  'client_port',
  'client_host',
  'directory_backup',
  'directory_restore',
  'scripts_path',
  'allowed_to_delete_files',
  'skip_storage',
  'default_s3_endpoint',
  'max_job_number',
  'script_env_passthrough',
  'script_log_max_bytes',
  'log_level',
]

/** The folder the demo keeps everything in, relative to the working directory. */
export const DEMO_DIRECTORY = 'var'
/** The package's own demo scripts (the repository's or the release's examples/scripts/demo). */
const DEMO_SCRIPTS = fileURLToPath(new URL('examples/scripts/demo', INSTALL_ROOT))

/**
 * Settings of the demo start. The credentials are placeholders here: main generates them into
 * var/credentials (src/demo.ts), since reading the environment must not touch the disk.
 */
function demoDefaults(cwd: string): Env {
  const dir = join(cwd, DEMO_DIRECTORY)
  return {
    client_username: 'demo',
    client_password: 'generated-at-start',
    client_host: '127.0.0.1',
    directory_backup: join(dir, 'backup'),
    directory_restore: join(dir, 'restore'),
    directory_state: join(dir, 'state'),
    scripts_path: DEMO_SCRIPTS,
  }
}

export function isDemoEnvironment(env: Env): boolean {
  return SPEC_VARIABLES.every((name) => env[name] === undefined)
}

/** Settings that may be absent without a default (no start-up error). */
const OPTIONAL: ReadonlySet<keyof Config> = new Set(['caFile', 'swiftRegion', 'tlsCertFile', 'tlsKeyFile', 'tlsClientCaFile', 'jobGroup'])

export interface LoadedConfig {
  config: Config
  warnings: string[]
}

export function loadConfig(given: Env, cwd = process.cwd()): LoadedConfig {
  const demo = isDemoEnvironment(given)
  // Demo values only fill in what the environment leaves out (directory_state, … may be given).
  const env = demo ? { ...demoDefaults(cwd), ...definedOnly(given) } : given
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
    if (raw !== undefined && raw !== '')
      warnings.push(`${s.env}: cannot use the value given; using the default ${JSON.stringify(s.fallback)}`)
    values[s.key] = s.fallback
  }
  if (missing.length > 0) {
    throw new ConfigError(`missing required setting(s): ${missing.join(', ')} (set them as environment variables)`)
  }
  const config = values as unknown as Config
  config.demo = demo
  if (config.directoryState === '') config.directoryState = join(dirname(resolve(config.directoryBackup)), 'state')
  config.localStorageRoot = resolve(cwd, config.localStorageRoot)
  // The agent's own settings (client_password, TLS key paths…) never reach a script, even when
  // script_env_passthrough names them.
  const own = new Set<string>(SETTINGS.map((s) => s.env))
  const passedOwn = config.scriptEnvPassthrough.filter((name) => own.has(name))
  if (passedOwn.length > 0) {
    warnings.push(`script_env_passthrough: ${passedOwn.join(', ')} left out: the agent's own settings are never passed to scripts`)
    config.scriptEnvPassthrough = config.scriptEnvPassthrough.filter((name) => !own.has(name))
  }
  for (const name of config.scriptParameterNames) {
    const reserved = reservedNameReason(name, config.scriptEnvPassthrough)
    if (reserved) warnings.push(`script_parameter_names: ${name} stays refused: it ${reserved}`)
  }
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

function definedOnly(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined))
}
