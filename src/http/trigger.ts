// Turns a trigger body into a JobRequest, or into the list of every bad field (SPEC §3).
// Loaded on the first trigger or DELETE (src/http/jobs.ts): start-up and polls do not need it.
//
// Documented keys are matched case-insensitively (the old agent did so), keys inside
// `parameters` and unknown subtrees are left as they are, unknown keys are ignored.
import type { Config } from '../config.ts'
import { restoreFilenameProblem } from '../jobs/file-base.ts'
import type { Destination, DatabaseTarget, JobKind, JobRequest, StorageDestination } from '../jobs/request.ts'
import { parameterNameProblem } from '../scripts/parameter-names.ts'
import { authVersion, type AuthVersion } from '../storage/swift/keystone.ts'
import { idProblem } from './ids.ts'
import type { JsonSchema } from './json-schema.ts'
import { schemaErrors, type SchemaError } from './schema-check.ts'
import { FILENAME_PREFIX_MAX_BYTES, FOLDER_NAME_MAX_BYTES, MAX_PARAMETERS, scriptInputProblems, utf8Bytes } from './script-inputs.ts'
import { DeleteSchema, TriggerSchema, type DatabaseBody, type DeleteBody, type DestinationBody, type TriggerBody } from './schemas.ts'

export type Checked<T> = { ok: true; value: T } | { ok: false; errors: string[] }

const STORAGE_FIELDS: Record<StorageDestination['type'], readonly string[]> = {
  S3: ['bucket', 'authKey', 'authSecret'],
  SWIFT: ['authUrl', 'username', 'password', 'container_name'],
  LOCAL: [],
}
/** What each Keystone version logs in with besides username and password (docs/SWIFT.md); v1 needs nothing more. */
const KEYSTONE_FIELDS: Record<AuthVersion, readonly ('domain' | 'project_name')[]> = {
  v3: ['domain', 'project_name'],
  'v2.0': ['project_name'],
  v1: [],
}
const DESTINATION_TYPES = Object.keys(STORAGE_FIELDS) as StorageDestination['type'][]
const DATABASE_FIELDS = ['host', 'username', 'database'] as const
const NO_DATABASE: DatabaseTarget = Object.freeze({ host: '', username: '', password: '', database: '', parameters: Object.freeze({}) })

export function parseDelete(body: unknown): Checked<string> {
  const { value, errors } = shape<DeleteBody>(body, DeleteSchema)
  const problem = value && idProblem(value.id)
  if (problem) errors.push(problem)
  return errors.length > 0 || !value ? { ok: false, errors: oncePerField(errors) } : { ok: true, value: value.id as string }
}

export function parseTrigger(kind: JobKind, body: unknown, config: Config): Checked<JobRequest> {
  const { value: b, errors } = shape<TriggerBody>(body, TriggerSchema)
  if (!b) return { ok: false, errors }
  const idError = idProblem(b.id)
  if (idError) errors.push(idError)

  const destination = b.destination ? parseDestination(kind, b.destination, config, errors) : undefined
  if (!b.destination) errors.push('destination is required')
  // A verify job runs no script: it has no database section (one sent is ignored, as unknown keys are).
  const db = kind === 'verify' ? {} : b[kind]
  const database = db ? (kind === 'verify' ? NO_DATABASE : parseDatabase(kind, db, config, errors)) : undefined
  if (!db) errors.push(`${kind} is required`)

  if (!destination || !database) return { ok: false, errors: oncePerField(errors) }
  const request: JobRequest = {
    kind,
    id: b.id ?? '',
    compression: b.compression ?? false,
    encryptionKey: b.encryption_key ?? '',
    destination,
    database,
  }
  errors.push(...scriptInputProblems(request))
  return errors.length > 0 ? { ok: false, errors: oncePerField(errors) } : { ok: true, value: request }
}

type RawDestination = DestinationBody
type RawDatabase = DatabaseBody

function parseDestination(kind: JobKind, d: RawDestination, config: Config, errors: string[]): Destination | undefined {
  const type = DESTINATION_TYPES.find((t) => t === d.type)
  if (type === undefined) {
    const choices = DESTINATION_TYPES.join(', ')
    errors.push(
      d.type
        ? `destination.type must be one of ${choices}, not ${JSON.stringify(d.type.slice(0, 32))}${d.type.length > 32 ? ' (cut)' : ''}`
        : `destination.type is required (${choices})`,
    )
    return undefined
  }
  const common = commonDestination(kind, type, d, config, errors)
  if (type === 'LOCAL') return localDestination(kind, common, errors)
  if (type === 'S3') return s3Destination(d, config, common, errors)
  return swiftDestination(d, common, errors)
}

/** What every destination type has, and the checks on it. */
type DestinationCommon = Pick<Destination, 'skipStorage' | 'filenamePrefix' | 'filename'>

function commonDestination(
  kind: JobKind,
  type: StorageDestination['type'],
  d: RawDestination,
  config: Config,
  errors: string[],
): DestinationCommon {
  const skipStorage = config.skipStorage || (d.skipStorage ?? false)
  const filenamePrefix = d.filenamePrefix ?? ''
  if (filenamePrefix !== '' && !filenamePrefix.endsWith('/')) errors.push('destination.filenamePrefix must end with / when it is not empty')
  // Where the agent stores under the prefix (S3 keys, LOCAL folders), a longer one would fail
  // the upload after the scripts ran; elsewhere it is only echoed or passed to the scripts.
  const prefixBytes = utf8Bytes(filenamePrefix)
  if (!skipStorage && type !== 'SWIFT' && prefixBytes > FILENAME_PREFIX_MAX_BYTES) {
    errors.push(
      `destination.filenamePrefix is ${prefixBytes} bytes: at most ${FILENAME_PREFIX_MAX_BYTES} in UTF-8 where the agent stores under it (an S3 key, prefix and file name, is at most 1024 bytes)`,
    )
  }
  const filename = d.filename ?? ''
  // A verify reads the stored object: nothing to read without storage.
  if (kind === 'verify' && skipStorage)
    errors.push(
      config.skipStorage
        ? 'a verify job reads the object from storage, and this agent has skip_storage set'
        : 'destination.skipStorage must not be true for a verify job: it reads the object from storage',
    )
  if (kind !== 'backup') {
    if (filename === '' && !skipStorage) errors.push(`destination.filename is required for a ${kind}`)
    else if (filename !== '') {
      const problem = restoreFilenameProblem(filename)
      if (problem) errors.push(`destination.filename ${problem}`)
    }
  }
  // Required with skipStorage too (the old agent did so): the scripts then get them (S3_BUCKET, …).
  for (const field of STORAGE_FIELDS[type]) {
    if (!d[field as keyof RawDestination]) errors.push(`destination.${field} is required for ${type}`)
  }
  return { skipStorage, filenamePrefix, filename }
}

function localDestination(kind: JobKind, common: DestinationCommon, errors: string[]): Destination {
  const { skipStorage, filenamePrefix, filename } = common
  // The prefix becomes folders under local_storage_root: it must stay inside it.
  if (filenamePrefix !== '' && !isPlainRelativePath(filenamePrefix.slice(0, -1))) {
    errors.push('destination.filenamePrefix for LOCAL must be relative folder names (no leading /, no . or .., no empty parts)')
  }
  const longFolder = filenamePrefix.split('/').find((part) => utf8Bytes(part) > FOLDER_NAME_MAX_BYTES)
  if (!skipStorage && longFolder !== undefined)
    errors.push(
      `destination.filenamePrefix for LOCAL has a folder name of ${utf8Bytes(longFolder)} bytes: at most ${FOLDER_NAME_MAX_BYTES} (NAME_MAX)`,
    )
  // Names starting with "." are LOCAL's own files (metadata, partial uploads): never objects.
  if (!skipStorage) {
    const reserved = (field: string, part: string) =>
      errors.push(
        `destination.${field} for LOCAL must not start a name with "." (${JSON.stringify(part.slice(0, 64))}): such names are the agent's own files`,
      )
    const dottedFolder = filenamePrefix.split('/').find((part) => part.startsWith('.'))
    if (dottedFolder !== undefined) reserved('filenamePrefix', dottedFolder)
    if (kind !== 'backup' && filename.startsWith('.')) reserved('filename', filename)
  }
  return { type: 'LOCAL', ...common }
}

function s3Destination(d: RawDestination, config: Config, common: DestinationCommon, errors: string[]): Destination | undefined {
  const { filenamePrefix } = common
  // Path-style URLs carry the bucket and the key as path segments, and URL parsing resolves
  // `.` and `..` there: such a name would address another object than the one named.
  const bucket = d.bucket ?? ''
  if (bucket === '.' || bucket === '..' || bucket.includes('/')) errors.push('destination.bucket must be a bucket name (no /, not . or ..)')
  if (filenamePrefix.split('/').some((part) => part === '.' || part === '..'))
    errors.push('destination.filenamePrefix for S3 must not have a . or .. folder (a URL resolves them)')
  const endpoint = d.endpoint || config.defaultS3Endpoint
  const url = s3EndpointUrl(endpoint, d.useSSL, d.skipSSL, errors)
  if (url === undefined) return undefined
  return {
    type: 'S3',
    bucket,
    endpoint,
    endpointUrl: url.href.replace(/\/$/, ''),
    useSSL: url.protocol === 'https:',
    region: d.region || undefined,
    authKey: d.authKey ?? '',
    authSecret: d.authSecret ?? '',
    ...common,
  }
}

function swiftDestination(d: RawDestination, common: DestinationCommon, errors: string[]): Destination {
  // The container is a segment of the storage URL (% is encoded): URL parsing resolves `..` and a
  // `/` adds segments, so either would leave the account the token is for.
  const container = d.container_name ?? ''
  if (container.includes('/') || container === '.' || container === '..')
    errors.push('destination.container_name must be a plain container name (no /, not . or ..)')
  const authUrl = d.authUrl ?? ''
  if (authUrl !== '') {
    const url = URL.parse(authUrl)
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      errors.push('destination.authUrl must be an http:// or https:// URL')
    // The auth URL is echoed in polling bodies and named in log lines: no credentials in it.
    else if (url.username !== '' || url.password !== '')
      errors.push('destination.authUrl must not contain a user or password (user@ or user:password@); use username and password')
    else {
      // The login's own rule (src/storage/swift/keystone.ts) decides the version: the same URLs here.
      const version = authVersion(authUrl)
      for (const field of KEYSTONE_FIELDS[version]) {
        if (!d[field])
          errors.push(
            `destination.${field} is required for Keystone ${version} (authUrl ending in /${version === 'v3' ? 'v3' : 'v2.0 or /v2'})`,
          )
      }
    }
  }
  return {
    type: 'SWIFT',
    authUrl,
    domain: d.domain ?? '',
    projectName: d.project_name ?? '',
    containerName: d.container_name ?? '',
    username: d.username ?? '',
    password: d.password ?? '',
    ...common,
  }
}

/** `a/b/c` with no empty, `.` or `..` part: a path that cannot leave the folder it is joined to. */
export function isPlainRelativePath(path: string): boolean {
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..')
}

/**
 * The S3 endpoint as a URL. The scheme comes from, in order: a scheme in the endpoint, useSSL,
 * skipSSL (useSSL = !skipSSL), else HTTPS. An explicit flag that contradicts the scheme is an error.
 */
function s3EndpointUrl(
  endpoint: string,
  useSSL: boolean | null | undefined,
  skipSSL: boolean | null | undefined,
  errors: string[],
): URL | undefined {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(endpoint)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    errors.push('destination.endpoint must be host[:port], optionally with http:// or https://')
    return undefined
  }
  if (useSSL != null && skipSSL != null && useSSL === skipSSL) {
    errors.push('destination.useSSL and destination.skipSSL contradict each other')
    return undefined
  }
  const flagSays = useSSL ?? (skipSSL == null ? undefined : !skipSSL)
  if (scheme !== undefined && flagSays !== undefined && (scheme === 'https') !== flagSays) {
    errors.push(`destination.${useSSL != null ? 'useSSL' : 'skipSSL'} contradicts the ${scheme}:// scheme of destination.endpoint`)
    return undefined
  }
  const https = scheme !== undefined ? scheme === 'https' : (flagSays ?? true)
  const url = URL.parse(scheme !== undefined ? endpoint : `${https ? 'https' : 'http'}://${endpoint}`)
  if (
    !url ||
    url.hostname === '' ||
    url.username !== '' ||
    url.password !== '' ||
    url.search !== '' ||
    url.hash !== '' ||
    (url.pathname !== '/' && url.pathname !== '')
  ) {
    errors.push('destination.endpoint must be host[:port], optionally with http:// or https://')
    return undefined
  }
  return url
}

function parseDatabase(kind: JobKind, db: RawDatabase, config: Config, errors: string[]): DatabaseTarget | undefined {
  for (const field of DATABASE_FIELDS) if (!db[field]) errors.push(`${kind}.${field} is required`)
  // An empty password is allowed (databases without one); a missing one is not.
  if (db.password == null) errors.push(`${kind}.password is required`)
  const parameters = parseParameters(kind, db.parameters, config, errors)
  return {
    host: db.host ?? '',
    username: db.username ?? '',
    password: db.password ?? '',
    database: db.database ?? '',
    parameters,
  }
}

function parseParameters(kind: JobKind, raw: unknown, config: Config, errors: string[]): Record<string, string> {
  const where = `${kind}.parameters`
  const entries: [string, unknown][] = []
  if (raw == null) return {}
  if (Array.isArray(raw)) {
    raw.forEach((item, i) => {
      if (isPlainObject(item)) entries.push(...Object.entries(item))
      else errors.push(`${where}[${i}] must be an object like {"name": "value"}`)
    })
  } else if (isPlainObject(raw)) {
    entries.push(...Object.entries(raw))
  } else {
    errors.push(`${where} must be a list of one-key objects, an object, or null`)
    return {}
  }
  if (entries.length > MAX_PARAMETERS) {
    errors.push(`${where} has ${entries.length} parameters: at most ${MAX_PARAMETERS}`)
    return {}
  }
  const env: Record<string, string> = {}
  const rule = { listed: config.scriptParameterNames, passthrough: config.scriptEnvPassthrough }
  for (const [name, value] of entries) {
    const problem = parameterNameProblem(name, rule)
    if (problem) {
      errors.push(`${parameterField(where, name)} ${problem}`)
      continue
    }
    const rendered = renderValue(value)
    if (rendered === undefined) errors.push(`${where}.${name} must be a string, a finite number or a boolean`)
    else if (unfitText(rendered)) errors.push(`${where}.${name} ${unfitText(rendered)}`)
    // A list can name a parameter twice: which value would the script get? (Values not echoed.)
    else if (Object.hasOwn(env, name) && env[name] !== rendered) errors.push(`${where}.${name} is given twice with different values`)
    else env[name] = rendered
  }
  return env
}

/** `backup.parameters.name`, or with the name quoted (and cut) when it is not a plain identifier. */
function parameterField(where: string, name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name) ? `${where}.${name}` : `${where}[${JSON.stringify(name.slice(0, 64))}]`
}

/** Parameter values as environment strings: numbers in plain decimal, booleans as true/false. */
function renderValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return String(value)
  if (typeof value === 'number' && Number.isFinite(value)) return plainDecimal(String(value))
  return undefined
}

/**
 * JavaScript's shortest spelling of a number with its exponent written out: `1e-21` is
 * `0.000000000000000000001`, `1.5e+21` `1500000000000000000000`. The same digits, so the same
 * number (toLocaleString rounded to 20 decimals: 1e-21 became 0).
 */
function plainDecimal(shortest: string): string {
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(shortest)
  if (!m) return shortest
  const [, sign, first, rest = '', exponent] = m
  const digits = `${first}${rest}`
  const point = 1 + Number(exponent) // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}

/**
 * Renames documented keys to their canonical spelling (case-insensitively, following the
 * schema's properties), drops unknown keys, then checks types against the schema. A field of the
 * wrong type is reported and removed, so the caller's own checks still see the rest.
 */
function shape<T>(body: unknown, schema: JsonSchema): { value: T | undefined; errors: string[] } {
  if (!isPlainObject(body)) return { value: undefined, errors: ['the body must be a JSON object'] }
  const errors: string[] = []
  const canonical = canonicalKeys(body, schema, '', errors) as Record<string, unknown>
  const raw = schemaErrors(canonical, schema)
  if (raw.length > 0) {
    // An object with a bad field also fails its `| null` alternative ("destination must be
    // null"): only the field is reported. Everything that failed is removed, the object too.
    errors.push(...describeSchemaErrors(raw.filter((e) => !raw.some((o) => o.instancePath.startsWith(`${e.instancePath}/`)))))
    for (const e of raw) removePath(canonical, e.instancePath)
  }
  const unfit = findUnfit(canonical, '')
  if (unfit) errors.push(unfit)
  return { value: canonical as T, errors }
}

function removePath(root: Record<string, unknown>, pointer: string): void {
  const keys = pointer.split('/').slice(1)
  const last = keys.pop()
  if (last === undefined) return
  let node: unknown = root
  for (const key of keys) node = isPlainObject(node) ? node[key] : undefined
  if (isPlainObject(node)) delete node[last]
}

/** Keeps the first message per field: a field of the wrong type is not also "required". */
function oncePerField(messages: string[]): string[] {
  const seen = new Set<string>()
  return messages.filter((m) => {
    const field = m.split(' ')[0] ?? m
    // nor "destination is required" once a field of it was reported (the bad object was removed)
    if (seen.has(field) || [...seen].some((s) => s.startsWith(`${field}.`))) return false
    seen.add(field)
    return true
  })
}

function canonicalKeys(value: unknown, schema: JsonSchema, path: string, errors: string[]): unknown {
  const objectSchema = objectMember(schema)
  if (!objectSchema || !isPlainObject(value)) return value
  const properties = objectSchema.properties
  const byLowerCase = new Map(Object.keys(properties).map((k) => [k.toLowerCase(), k]))
  const out: Record<string, unknown> = {}
  const seenAs = new Map<string, string>()
  for (const [key, child] of Object.entries(value)) {
    const name = byLowerCase.get(key.toLowerCase())
    if (name === undefined) continue
    const normalised = canonicalKeys(child, properties[name] as JsonSchema, `${path}${name}.`, errors)
    const earlier = seenAs.get(name)
    if (earlier !== undefined && JSON.stringify(out[name]) !== JSON.stringify(normalised)) {
      errors.push(
        `${path}${name}: the keys ${JSON.stringify(earlier)} and ${JSON.stringify(key)} differ only by case but have different values`,
      )
      continue
    }
    seenAs.set(name, key)
    out[name] = normalised
  }
  return out
}

/** The object schema inside `T` or `T | null`, if any. */
function objectMember(schema: JsonSchema): (JsonSchema & { properties: Record<string, JsonSchema> }) | undefined {
  if (schema.properties) return schema as JsonSchema & { properties: Record<string, JsonSchema> }
  return schema.anyOf?.map(objectMember).find((m) => m !== undefined)
}

function describeSchemaErrors(raw: Iterable<SchemaError>): string[] {
  const byPath = new Map<string, Set<string>>()
  const out: string[] = []
  for (const e of raw) {
    const field = e.instancePath.slice(1).replaceAll('/', '.')
    if (e.keyword === 'required') {
      for (const name of e.params.requiredProperties ?? []) out.push(`${field ? `${field}.` : ''}${name} is required`)
    } else if (e.keyword === 'type') {
      const types = byPath.get(field) ?? new Set<string>()
      types.add(String(e.params.type))
      byPath.set(field, types)
    }
  }
  for (const [field, types] of byPath) out.push(`${field || 'body'} must be ${[...types].join(' or ')}`)
  return out
}

/** Why a string cannot reach a script or a file name: NUL ends it, an unpaired surrogate becomes U+FFFD. */
function unfitText(text: string): string | undefined {
  if (text.includes('\0')) return 'must not contain NUL characters'
  // JSON can spell one (\ud800); it would reach the script and the disk as another character
  // than the one the agent checked and masks.
  if (!text.isWellFormed()) return 'must not contain unpaired UTF-16 surrogates (\\ud800…\\udfff alone)'
  return undefined
}

function findUnfit(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') {
    const problem = unfitText(value)
    return problem && `${path.slice(0, -1)} ${problem}`
  }
  if (!isPlainObject(value)) return undefined
  for (const [key, child] of Object.entries(value)) {
    if (key === 'parameters') continue // checked with the parameters, per value
    const found = findUnfit(child, `${path}${key}.`)
    if (found) return found
  }
  return undefined
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
