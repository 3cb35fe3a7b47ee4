// An independent reading of SPEC §3 for the fuzz campaign: would the contract accept this trigger
// body? Written from the spec, not from src/http/trigger.ts, so that the two can disagree.
//
// Where the spec leaves room (the exact URL grammar of an endpoint, two spellings of a key whose
// values are objects), the oracle answers 'unsure' rather than guess: the campaign only calls a
// 2xx a violation when the oracle says 'reject'.

export type Verdict = { verdict: 'accept' | 'reject' | 'unsure'; reason: string }

const ACCEPT: Verdict = { verdict: 'accept', reason: 'valid' }
const reject = (reason: string): Verdict => ({ verdict: 'reject', reason })
const unsure = (reason: string): Verdict => ({ verdict: 'unsure', reason })

/** The agent's documented bound on nesting (README, docs/SECURITY.md). */
const MAX_DEPTH = 64
const ID = /^[A-Za-z0-9._-]{1,128}$/
/** Lower-case names only: the campaign's agent lists nothing in script_parameter_names. */
const PARAMETER_NAME = /^[a-z_][a-z0-9_]*$/
const PASSTHROUGH = ['PATH', 'LD_LIBRARY_PATH', 'LANG', 'TZ', 'HOME']
/** SPEC §5 and the README's additions (C library and interpreter hooks). */
const RESERVED = new Set([
  'S3_BUCKET',
  'S3_ENDPOINT',
  'S3_REGION',
  'S3_AUTHKEY',
  'S3_AUTHSECRET',
  'S3_SKIPSSL',
  'S3_FILENAMEPREFIX',
  'SWIFT_AUTHURL',
  'SWIFT_DOMAIN',
  'SWIFT_CONTAINERNAME',
  'SWIFT_PROJECTNAME',
  'SWIFT_USERNAME',
  'SWIFT_PASSWORD',
  'DB_PASSWORD',
  'ENCRYPTION_KEY',
  'BACKUP_STREAM',
  'RESTORE_STREAM',
  'BASH_ENV',
  'ENV',
  'IFS',
  'CDPATH',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'GLOBIGNORE',
  'GCONV_PATH',
  'GETCONF_DIR',
  'GLIBC_TUNABLES',
  'HOSTALIASES',
  'LOCALDOMAIN',
  'LOCPATH',
  'NIS_PATH',
  'NLSPATH',
  'RESOLV_HOST_CONF',
  'RES_OPTIONS',
  'TZDIR',
  'PERL5OPT',
  'PERL5LIB',
  'PERLLIB',
  'PERL5DB',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONINSPECT',
  'PYTHONWARNINGS',
  'NODE_OPTIONS',
  'NODE_PATH',
  'RUBYOPT',
  'RUBYLIB',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  ...PASSTHROUGH,
])
/** Reserved names are compared without regard to case (README: tools read some in either case). */
const RESERVED_PREFIXES = ['AGENT_', 'LD_', 'BASH_FUNC_', 'MALLOC_', 'NPM_CONFIG_']
const RESERVED_SUFFIXES = ['_PROXY']
const KiB = 1024
const utf8 = (s: string) => new TextEncoder().encode(s).length

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

class Rejected extends Error {
  verdict: Verdict
  constructor(verdict: Verdict) {
    super(verdict.reason)
    this.verdict = verdict
  }
}
const fail = (reason: string): never => {
  throw new Rejected(reject(reason))
}
const notSure = (reason: string): never => {
  throw new Rejected(unsure(reason))
}

/** A documented key, matched case-insensitively; two spellings with different values are a 400. */
function pick(obj: Json, name: string): unknown {
  const spellings = Object.keys(obj).filter((k) => k.toLowerCase() === name.toLowerCase())
  if (spellings.length === 0) return undefined
  const values = spellings.map((k) => obj[k])
  const distinct = new Set(values.map((v) => JSON.stringify(v)))
  if (distinct.size > 1) {
    // For objects the agent compares the documented part only: leave those to the agent.
    if (values.some((v) => typeof v === 'object' && v !== null)) notSure(`${name}: spellings with different object values`)
    fail(`${name}: two spellings with different values`)
  }
  return values[0]
}

const text = (obj: Json, name: string): string | undefined => {
  const v = pick(obj, name)
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') fail(`${name} is not a string`)
  if ((v as string).includes('\0')) fail(`${name} contains NUL`)
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(v as string)) fail(`${name} has an unpaired surrogate`)
  return v as string
}
const flag = (obj: Json, name: string): boolean | undefined => {
  const v = pick(obj, name)
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') fail(`${name} is not a boolean`)
  return v as boolean
}
const object = (obj: Json, name: string): Json | undefined => {
  const v = pick(obj, name)
  if (v === undefined || v === null) return undefined
  if (!isObject(v)) fail(`${name} is not an object`)
  return v as Json
}

function depth(value: unknown): number {
  let max = 0
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number]
    if (typeof v !== 'object' || v === null) continue
    max = Math.max(max, d)
    if (max > MAX_DEPTH) return max
    for (const child of Object.values(v)) stack.push([child, d + 1])
  }
  return max
}

export function judgeTrigger(kind: 'backup' | 'restore', body: unknown): Verdict {
  try {
    return judge(kind, body)
  } catch (error) {
    if (error instanceof Rejected) return error.verdict
    throw error
  }
}

function judge(kind: 'backup' | 'restore', body: unknown): Verdict {
  if (!isObject(body)) return reject('not an object')
  if (depth(body) >= MAX_DEPTH) return reject('nested too deep')

  const id = text(body, 'id')
  if (id === undefined || !ID.test(id) || id === '.' || id === '..') fail('bad id')
  flag(body, 'compression')
  text(body, 'encryption_key')

  const destination = object(body, 'destination') ?? fail('no destination')
  const database = object(body, kind) ?? fail(`no ${kind}`)
  // The other kind's key: the spec does not say whether it is checked; leave it to the agent.
  const other = pick(body, kind === 'backup' ? 'restore' : 'backup')
  if (other !== undefined && other !== null) {
    try {
      if (!isObject(other)) notSure('other kind not an object')
      checkDatabaseTypes(other as Json)
      parametersOf(other as Json)
    } catch {
      notSure('the other kind is malformed')
    }
  }

  checkDestination(kind, destination)
  checkDatabase(database)
  checkScriptInputs(kind, body, destination, database)
  return ACCEPT
}

/** SPEC §3: each string a script gets at most 32 KiB, at most 256 parameters, 512 KiB in all. */
function checkScriptInputs(kind: 'backup' | 'restore', body: Json, d: Json, db: Json): void {
  const storage = [
    'bucket',
    'endpoint',
    'region',
    'authKey',
    'authSecret',
    'authUrl',
    'domain',
    'project_name',
    'container_name',
    'username',
    'password',
    'filenamePrefix',
  ]
  const strings = [
    text(body, 'id'),
    text(body, 'encryption_key'),
    ...['host', 'username', 'password', 'database'].map((f) => text(db, f)),
    ...storage.map((f) => text(d, f)),
  ]
  if (kind === 'restore') strings.push(text(d, 'filename'))
  const parameters = parametersOf(db)
  if (parameters.length > 256) fail('more than 256 parameters')
  for (const [name, value] of parameters) strings.push(name, typeof value === 'string' ? value : String(value))
  let total = 0
  for (const s of strings) {
    const bytes = utf8(s ?? '')
    if (bytes > 32 * KiB) fail('a string over 32 KiB')
    total += bytes
  }
  // Fields of the other destination type and numbers' spelling make the sum approximate.
  if (total > 512 * KiB + 4 * KiB) fail('over 512 KiB in all')
  if (total > 512 * KiB - 4 * KiB) notSure('near 512 KiB in all')
}

function checkDestination(kind: 'backup' | 'restore', d: Json): void {
  const texts = [
    'type',
    'filenamePrefix',
    'filename',
    'bucket',
    'endpoint',
    'region',
    'authKey',
    'authSecret',
    'authUrl',
    'domain',
    'project_name',
    'container_name',
    'username',
    'password',
  ]
  const t: Record<string, string | undefined> = {}
  for (const name of texts) t[name] = text(d, name)
  const skipStorage = flag(d, 'skipStorage') ?? false
  const useSSL = flag(d, 'useSSL')
  const skipSSL = flag(d, 'skipSSL')

  if (t.type === 'LOCAL') notSure('LOCAL (its prefix and dot-name rules are not modelled here)')
  if (t.type !== 'S3' && t.type !== 'SWIFT') fail('destination.type')
  const prefix = t.filenamePrefix ?? ''
  if (prefix !== '' && !prefix.endsWith('/')) fail('filenamePrefix without /')
  if (t.type === 'S3' && !skipStorage && utf8(prefix) > 512) fail('an S3 prefix over 512 bytes')
  if (kind === 'restore') {
    const filename = t.filename ?? ''
    if (filename === '' && !skipStorage) fail('restore without filename')
    if (filename !== '' && (filename.includes('/') || filename === '.' || filename === '..')) fail('filename not plain')
    if (utf8(filename) > 200) fail('filename over 200 bytes')
    if (['.osb', '..osb', '...osb'].includes(filename)) fail('a .osb name that decodes to "", . or ..')
  }
  // Required with skipStorage too (issue 14: the scripts get them).
  const required = t.type === 'S3' ? ['bucket', 'authKey', 'authSecret'] : ['authUrl', 'username', 'password', 'container_name']
  for (const name of required) if (!t[name]) fail(`${name} missing`)

  if (t.type === 'S3') {
    const endpoint = t.endpoint || 's3.amazonaws.com'
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(endpoint)?.[1]?.toLowerCase()
    if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') fail('endpoint scheme')
    if (useSSL !== undefined && skipSSL !== undefined && useSSL === skipSSL) fail('useSSL and skipSSL contradict')
    const flagSays = useSSL ?? (skipSSL === undefined ? undefined : !skipSSL)
    if (scheme !== undefined && flagSays !== undefined && (scheme === 'https') !== flagSays) fail('flag contradicts scheme')
    const rest = scheme === undefined ? endpoint : endpoint.slice(scheme.length + 3)
    const hostPort = /^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*)(:(\d{1,5}))?\/?$/.exec(rest)
    if (hostPort && Number(hostPort[4] ?? 0) <= 65535) return
    if (rest === '' || /[@?#\s]/.test(rest) || /\/./.test(rest)) fail('endpoint is not host[:port]')
    notSure('unusual endpoint')
  }
  const container = t.container_name ?? ''
  if (container.includes('/') || container === '.' || container === '..') fail('container_name not one URL segment')
  const authUrl = t.authUrl ?? ''
  if (authUrl !== '') {
    if (!/^https?:\/\//i.test(authUrl) || !URL.canParse(authUrl)) fail('authUrl')
    const url = new URL(authUrl)
    if (url.username !== '' || url.password !== '') fail('credentials in authUrl')
    // docs/SWIFT.md: the version is the path's last segment, trailing slashes aside
    const path = url.pathname.replace(/\/+$/, '')
    if (path.endsWith('/v3') && (!t.domain || !t.project_name)) fail('v3 without domain/project')
    if ((path.endsWith('/v2.0') || path.endsWith('/v2')) && !t.project_name) fail('v2.0 without project (tenant)')
  }
}

function checkDatabaseTypes(db: Json): void {
  for (const name of ['host', 'username', 'password', 'database']) text(db, name)
}

function checkDatabase(db: Json): void {
  checkDatabaseTypes(db)
  for (const name of ['host', 'username', 'database']) if (!text(db, name)) fail(`${name} missing`)
  if (text(db, 'password') === undefined) fail('password missing')
  const seen = new Map<string, string>()
  const numbers = new Set<string>()
  for (const [name, value] of parametersOf(db)) {
    if (utf8(name) > 128) fail('parameter name over 128 bytes')
    if (!PARAMETER_NAME.test(name)) fail(`parameter name ${name}`)
    const upper = name.toUpperCase()
    if (RESERVED.has(upper) || RESERVED_PREFIXES.some((p) => upper.startsWith(p)) || RESERVED_SUFFIXES.some((s) => upper.endsWith(s)))
      fail(`reserved parameter ${name}`)
    if (typeof value === 'string') {
      if (value.includes('\0')) fail('NUL in a parameter')
      if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) fail('an unpaired surrogate in a parameter')
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) fail('parameter not finite')
    } else if (typeof value !== 'boolean') fail(`parameter ${name} of a wrong type`)
    // the same name twice in a list: only the same value is unambiguous (numbers: notSure of the spelling)
    const earlier = seen.get(name)
    if (earlier !== undefined && earlier !== String(value)) {
      if (typeof value === 'number' || numbers.has(name)) notSure('a number named twice (its spelling)')
      fail(`parameter ${name} twice with different values`)
    }
    seen.set(name, String(value))
    if (typeof value === 'number') numbers.add(name)
  }
}

function parametersOf(db: Json): [string, unknown][] {
  const raw = pick(db, 'parameters')
  if (raw === undefined || raw === null) return []
  if (Array.isArray(raw)) {
    return raw.flatMap((item) => {
      if (!isObject(item)) fail('parameter item not an object')
      return Object.entries(item as Json)
    })
  }
  if (isObject(raw)) return Object.entries(raw)
  return fail('parameters of a wrong type')
}
