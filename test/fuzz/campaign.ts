// The fuzz campaign against a real agent process, shared by the quick sample in `npm test`
// (test/integration/fuzz.test.ts) and the long run of `npm run fuzz` (test/fuzz/run.ts).
//
// What it sends (fast-check generates it from a seed, so a run can be replayed):
// - structured trigger bodies, valid ones (key case, extra keys, nulls, parameters carrying shell
//   injection payloads) and ones broken in one place (ids, missing fields, wrong types, reserved
//   names, NUL, contradicting flags, case duplicates, huge numbers, deep nesting…);
// - raw byte mutations of valid manager bodies (flipped and inserted bytes, invalid UTF-8,
//   truncation, duplicate keys, huge numbers, deep nesting);
// - odd methods and paths; broken Authorization headers (also from other loopback addresses,
//   where login throttling answers); raw bytes on a socket (bad request lines and headers,
//   smuggling attempts, HTTP/2 and TLS on the plain port).
//
// What passes: no 5xx and no crash; no job started from a body that SPEC §3 rejects (judged by an
// independent oracle, test/fuzz/oracle.ts) and none from any other request; no command run from a
// parameter (marker files never appear); no file outside the agent's job directories; no error
// logged as a crash; no secret of any request in the agent's output (the helper's audit).
import fc from 'fast-check'
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { secretsOfRaw, startAgent, type Agent, type Reply } from '../helpers/agent.ts'
import { judgeTrigger, type Verdict } from './oracle.ts'

export interface CampaignOptions {
  requests: number
  seed: number
  /** Requests in flight at once. */
  concurrency?: number
  /** Progress lines (the long run prints them). */
  progress?: (line: string) => void
}

export interface CampaignResult {
  seed: number
  requests: number
  byCategory: Record<string, number>
  byStatus: Record<string, number>
  jobsStarted: number
  /** Bodies the oracle accepts that the agent refused (stricter than the spec; not a violation). */
  stricterThanOracle: number
  stricterSamples: string[]
  /** Bodies the oracle could not judge. */
  oracleUnsure: number
  violations: string[]
  durationMs: number
  /** The slowest answer per category. */
  slowestMs: Record<string, number>
}

type Kind = 'backup' | 'restore'

interface Context {
  agent: Agent
  port: number
  basic: string
  accepted: Record<Kind, Set<string>>
  /** 409s seen, checked at the end (the 201 for the same id may still be on its way back). */
  conflicts: { kind: Kind; id: string | undefined; what: string }[]
  /** Raw triggers that got no answer. */
  unanswered: { kind: Kind; body: Buffer; label: string }[]
  markerDir: string
  markerPrefix: string
  evilScript: string
  result: CampaignResult
}

const TRIGGER: Record<Kind, { method: string; path: string }> = {
  backup: { method: 'POST', path: '/backup' },
  restore: { method: 'PUT', path: '/restore' },
}

// ---------------------------------------------------------------------------------------------
// The agent under test

export interface FuzzTarget {
  agent: Agent
  /** Where the job directories live, nested so that `../` traversal stays inside and is seen. */
  sandbox: string
  markerDir: string
  markerPrefix: string
  evilScript: string
  stop: () => Promise<void>
}

export async function startFuzzTarget(): Promise<FuzzTarget> {
  const sandbox = await mkdtemp(join(tmpdir(), 'osb-agent-fuzz-'))
  const markerPrefix = `osb-fuzz-marker-${process.pid}-${Date.now().toString(36)}`
  const markerDir = join(sandbox, 'markers')
  await mkdir(markerDir)
  const evilScript = join(sandbox, 'evil.sh')
  await writeFile(evilScript, `touch '${markerDir}/sourced'\n`)
  await chmod(evilScript, 0o755)
  const deep = join(sandbox, 'a', 'b', 'c', 'd')
  const agent = await startAgent({
    env: {
      directory_backup: join(deep, 'backup'),
      directory_restore: join(deep, 'restore'),
      max_job_number: '50',
      auth_throttle_exempt: '127.0.0.1',
      script_log_max_bytes: '4096',
    },
    scripts: {
      // set -x expands PS4 (a reserved name); env would show what a parameter set
      'pre-backup-check': 'set -x; true "$1"',
      backup: 'printf "dump of %s\\n" "$4" > "$5.sql"; env > /dev/null',
      restore: 'if [ -n "$5" ] && [ -f "$5" ]; then head -c 100 "$5"; fi; echo "$1 $4" > /dev/null',
    },
  })
  return {
    agent,
    sandbox,
    markerDir,
    markerPrefix,
    evilScript,
    async stop() {
      try {
        await agent.stop()
      } finally {
        await rm(sandbox, { recursive: true, force: true })
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Generators

const RESERVED_SAMPLES = [
  'BASH_ENV',
  'ENV',
  'IFS',
  'CDPATH',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'GLOBIGNORE',
  'PATH',
  'HOME',
  'LANG',
  'TZ',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'LD_AUDIT',
  'AGENT_X',
  'DB_PASSWORD',
  'ENCRYPTION_KEY',
  'S3_AUTHSECRET',
  'SWIFT_PASSWORD',
  'BACKUP_STREAM',
  'GCONV_PATH',
  'PERL5OPT',
  'NODE_OPTIONS',
  'PYTHONSTARTUP',
  'JAVA_TOOL_OPTIONS',
  'MALLOC_CHECK_',
  'GLIBC_TUNABLES',
  // Not reserved, but upper case (refused unless listed) and the lower-case names tools read.
  'TAR_OPTIONS',
  'OPENSSL_CONF',
  'PGPORT',
  'retryCount',
  'http_proxy',
  'HTTPS_PROXY',
  'No_Proxy',
  'npm_config_script_shell',
  'NPM_CONFIG_PREFIX',
]

/** Values meant to run a command if anything ever handed them to a shell. */
function injections(markerDir: string, evilScript: string, markerPrefix: string): string[] {
  const m = (name: string) => `${markerDir}/${name}`
  return [
    `$(touch ${m('subst')})`,
    `\`touch ${m('backtick')}\``,
    `; touch ${m('semicolon')}`,
    `&& touch ${m('and')}`,
    `| touch ${m('pipe')}`,
    `\ntouch ${m('newline')}\n`,
    `() { :; }; touch ${m('shellshock')}`,
    `'"; touch ${m('quote')}; "'`,
    `$(bash ${evilScript})`,
    evilScript,
    `-c touch ${m('option')}`,
    `--help; touch ${m('dashdash')}`,
    `*`,
    `../../../../../../tmp/${markerPrefix}-traversal`,
  ]
}

const ID_CHARS = fc.constantFrom(...'abcdefABCDEF0123456789._-')
const secret = fc
  .string({ unit: fc.constantFrom(...'abcdefghijkmnpqrstuvwxyz23456789'), minLength: 10, maxLength: 24 })
  .map((s) => `s3cr3t-${s}`)
const anyText = fc.string({ unit: 'binary', maxLength: 24 })
const nonEmptyText = fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }).filter((s) => !s.includes('\0'))
const parameterName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,14}$/).map((n) => `p_${n}`)

/** Re-spells the documented keys of a body (SPEC §3 matches them case-insensitively). */
function recase(body: Record<string, unknown>, spellings: string[]): Record<string, unknown> {
  let i = 0
  const next = () => spellings[i++ % spellings.length] as string
  const walk = (value: unknown, documented: boolean): unknown => {
    if (!documented || typeof value !== 'object' || value === null || Array.isArray(value)) return value
    const out: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(value)) {
      const pick = next()
      const spelled = pick === 'upper' ? key.toUpperCase() : pick === 'lower' ? key.toLowerCase() : key
      out[spelled] = walk(child, key !== 'parameters' && ['destination', 'backup', 'restore'].includes(key))
    }
    return out
  }
  return walk(body, true) as Record<string, unknown>
}

interface BodyCase {
  kind: Kind
  body: Record<string, unknown>
  label: string
}

function validBodyArbitrary(markerDir: string, evilScript: string, markerPrefix: string): fc.Arbitrary<BodyCase> {
  const parameterValue = fc.oneof(
    { weight: 3, arbitrary: anyText.filter((s) => !s.includes('\0')) },
    { weight: 3, arbitrary: fc.constantFrom(...injections(markerDir, evilScript, markerPrefix)) },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
    { weight: 1, arbitrary: fc.constantFrom(1e21, 1e308, -0, 5e-324, Number.MAX_SAFE_INTEGER + 2) },
    { weight: 1, arbitrary: fc.boolean() },
  )
  const parameterEntry = fc.oneof(
    { weight: 4, arbitrary: fc.tuple(parameterName, parameterValue) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('p_secret', 'p_api_key', 'p_token', 'p_password'), secret) },
  )
  const parameters = fc.oneof(
    fc.constant(null),
    fc.constant(undefined),
    fc.array(parameterEntry, { maxLength: 5 }).map((entries) => entries.map(([k, v]) => ({ [k]: v }))),
    fc.array(parameterEntry, { maxLength: 5 }).map((entries) => Object.fromEntries(entries)),
  )
  const s3 = fc.record({
    type: fc.constant('S3'),
    skipStorage: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    bucket: fc.string({ unit: ID_CHARS, minLength: 1, maxLength: 12 }),
    endpoint: fc.constantFrom('127.0.0.1:9', 'http://127.0.0.1:9', 'localhost:9', '', null),
    useSSL: fc.constantFrom(false, null),
    region: fc.constantFrom(null, 'us-east-1', ''),
    authKey: fc.string({ unit: ID_CHARS, minLength: 1, maxLength: 12 }),
    authSecret: secret,
    filenamePrefix: fc.constantFrom('', 'backups/', 'a/b/', null, '../../'),
  })
  const swift = fc.record({
    type: fc.constant('SWIFT'),
    skipStorage: fc.constant(true),
    authUrl: fc.constantFrom('http://127.0.0.1:9/v3', 'https://keystone.local/v2.0', 'http://127.0.0.1:9/auth/v1.0'),
    domain: fc.constantFrom('Default', 'd'),
    project_name: fc.constantFrom('p', 'service'),
    container_name: fc.string({ unit: ID_CHARS, minLength: 1, maxLength: 10 }),
    username: nonEmptyText,
    password: secret,
  })
  const extras = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 })
  return fc
    .record({
      kind: fc.constantFrom<Kind>('backup', 'restore'),
      destination: fc.oneof({ weight: 4, arbitrary: s3 }, { weight: 1, arbitrary: swift }),
      filename: fc.constantFrom('dump.sql', 'x', '..x', 'a b.tar.gz', 'ünï.dump'),
      compression: fc.constantFrom(true, false, null, undefined),
      encryptionKey: fc.oneof(secret, fc.constantFrom(null, 'none', undefined)),
      host: nonEmptyText,
      username: nonEmptyText,
      password: fc.oneof({ weight: 4, arbitrary: secret }, { weight: 1, arbitrary: fc.constant('') }),
      database: nonEmptyText,
      parameters,
      extras,
      spellings: fc.array(fc.constantFrom('same', 'same', 'upper', 'lower'), { minLength: 1, maxLength: 8 }),
    })
    .map((r) => {
      const destination: Record<string, unknown> = { ...r.destination }
      if (r.kind === 'restore') destination.filename = r.filename
      const database: Record<string, unknown> = { host: r.host, username: r.username, password: r.password, database: r.database }
      if (r.parameters !== undefined) database.parameters = r.parameters
      const body: Record<string, unknown> = { ...r.extras, id: '', destination, [r.kind]: database }
      if (r.compression !== undefined) body.compression = r.compression
      if (r.encryptionKey !== undefined) body.encryption_key = r.encryptionKey
      for (const k of Object.keys(r.extras))
        if (['id', 'destination', 'backup', 'restore', 'compression', 'encryption_key'].includes(k.toLowerCase())) delete body[k]
      body.id = ''
      return { kind: r.kind, body: recase(body, r.spellings), label: 'valid' }
    })
}

/** One thing wrong with an otherwise valid body. */
type Breakage = { label: string; apply: (body: Record<string, unknown>, kind: Kind) => void }

function breakages(markerDir: string, evilScript: string, markerPrefix: string): fc.Arbitrary<Breakage> {
  const db = (b: Record<string, unknown>, kind: Kind) =>
    (b[Object.keys(b).find((k) => k.toLowerCase() === kind) ?? kind] ?? {}) as Record<string, unknown>
  const dest = (b: Record<string, unknown>) =>
    (b[Object.keys(b).find((k) => k.toLowerCase() === 'destination') ?? 'destination'] ?? {}) as Record<string, unknown>
  const setKey = (o: Record<string, unknown>, name: string, value: unknown) => {
    const key = Object.keys(o).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name
    if (value === undefined) delete o[key]
    else o[key] = value
  }
  const badIds = [
    '..',
    '.',
    '../x',
    'a/b',
    '../../../../../../tmp/MARKER',
    'x'.repeat(129),
    'id with space',
    '',
    'ïd',
    'a\0b',
    'a\\b',
    '%2e%2e',
  ]
  const wrongTypes: unknown[] = [5, true, [], {}, 'yes', [1, 2]]
  return fc.oneof(
    fc.constantFrom(...badIds).map(
      (id): Breakage => ({
        label: `id ${JSON.stringify(id)}`,
        apply: (b) => setKey(b, 'id', id.replace('MARKER', `${markerPrefix}-id`)),
      }),
    ),
    fc
      .constantFrom(5, null, true, ['x'], { id: 'x' })
      .map((id): Breakage => ({ label: 'id of a wrong type', apply: (b) => setKey(b, 'id', id) })),
    fc.constantFrom('id', 'destination').map((f): Breakage => ({ label: `no ${f}`, apply: (b) => setKey(b, f, undefined) })),
    fc.constant<Breakage>({ label: 'no database object', apply: (b, kind) => setKey(b, kind, undefined) }),
    fc
      .constantFrom('host', 'username', 'database', 'password')
      .map((f): Breakage => ({ label: `no ${f}`, apply: (b, kind) => setKey(db(b, kind), f, undefined) })),
    fc
      .constantFrom('host', 'username', 'database')
      .map((f): Breakage => ({ label: `empty ${f}`, apply: (b, kind) => setKey(db(b, kind), f, '') })),
    fc.tuple(fc.constantFrom('compression', 'encryption_key'), fc.constantFrom(...wrongTypes)).map(
      ([f, v]): Breakage => ({
        label: `${f} of a wrong type`,
        apply: (b) => setKey(b, f, f === 'encryption_key' && typeof v === 'string' ? 5 : v),
      }),
    ),
    fc
      .constantFrom<unknown>('x', 5, [], true)
      .map((v): Breakage => ({ label: 'destination of a wrong type', apply: (b) => setKey(b, 'destination', v) })),
    fc
      .constantFrom<unknown>('x', 5, [], true)
      .map((v): Breakage => ({ label: 'database of a wrong type', apply: (b, kind) => setKey(b, kind, v) })),
    fc
      .tuple(fc.constantFrom('host', 'username', 'password', 'database'), fc.constantFrom<unknown>(5, true, {}, []))
      .map(([f, v]): Breakage => ({ label: `${f} of a wrong type`, apply: (b, kind) => setKey(db(b, kind), f, v) })),
    fc
      .constantFrom('FTP', 's3', 'LOCAL', '', 'S3 ', 'swift')
      .map((t): Breakage => ({ label: `type ${t}`, apply: (b) => setKey(dest(b), 'type', t) })),
    fc
      .constantFrom('skipStorage', 'useSSL', 'skipSSL')
      .map((f): Breakage => ({ label: `${f} of a wrong type`, apply: (b) => setKey(dest(b), f, 'true') })),
    fc.constant<Breakage>({ label: 'prefix without /', apply: (b) => setKey(dest(b), 'filenamePrefix', 'backups') }),
    fc.constant<Breakage>({
      label: 'contradicting SSL flags',
      apply: (b) => {
        setKey(dest(b), 'useSSL', true)
        setKey(dest(b), 'skipSSL', true)
      },
    }),
    fc.constantFrom('ftp://x', 'user:pw@host', 'host/path', 'host?x=1', 'http://', 'host#f', 'file:///etc/passwd').map(
      (e): Breakage => ({
        label: `endpoint ${e}`,
        apply: (b) => {
          setKey(dest(b), 'type', 'S3')
          setKey(dest(b), 'endpoint', e)
        },
      }),
    ),
    fc
      .constantFrom('../x', 'a/b', '..', '.', '/etc/passwd', '.osb', '..osb', '...osb', 'é'.repeat(101))
      .map((f): Breakage => ({ label: `restore filename ${f.slice(0, 12)}`, apply: (b) => setKey(dest(b), 'filename', f) })),
    fc
      .constantFrom('host', 'username', 'password', 'database')
      .map((f): Breakage => ({ label: `${f} over 32 KiB`, apply: (b, kind) => setKey(db(b, kind), f, `${'é'.repeat(16 * 1024)}x`) })),
    fc.constant<Breakage>({
      label: 'parameter value over 32 KiB',
      apply: (b, kind) => setKey(db(b, kind), 'parameters', { p_big: 'x'.repeat(32 * 1024 + 1) }),
    }),
    fc.constant<Breakage>({
      label: '257 parameters',
      apply: (b, kind) =>
        setKey(
          db(b, kind),
          'parameters',
          Array.from({ length: 257 }, (_, i) => ({ [`p${i}`]: 'x' })),
        ),
    }),
    fc.constant<Breakage>({
      label: 'over 512 KiB for the scripts',
      apply: (b, kind) =>
        setKey(
          db(b, kind),
          'parameters',
          Array.from({ length: 17 }, (_, i) => ({ [`p${i}`]: 'x'.repeat(32 * 1024) })),
        ),
    }),
    fc.constant<Breakage>({
      label: 'parameter name over 128 bytes',
      apply: (b, kind) => setKey(db(b, kind), 'parameters', { ['p'.repeat(129)]: 'x' }),
    }),
    fc.constantFrom(...RESERVED_SAMPLES).map(
      (name): Breakage => ({
        label: `reserved parameter ${name}`,
        apply: (b, kind) =>
          setKey(db(b, kind), 'parameters', [
            { [name]: name === 'BASH_ENV' || name === 'ENV' ? evilScript : `$(touch ${markerDir}/reserved-${name})` },
          ]),
      }),
    ),
    fc.constantFrom('1abc', 'a-b', 'a b', '', 'BASH_FUNC_x%%', 'x=y', 'é').map(
      (name): Breakage => ({
        label: `parameter name ${JSON.stringify(name)}`,
        apply: (b, kind) => setKey(db(b, kind), 'parameters', { [name]: `() { :; }; touch ${markerDir}/name` }),
      }),
    ),
    fc.constantFrom<unknown>({ nested: 1 }, null, [1]).map(
      (v): Breakage => ({
        label: 'parameter value of a wrong type',
        apply: (b, kind) => setKey(db(b, kind), 'parameters', [{ ok_name: v }]),
      }),
    ),
    fc
      .constantFrom<unknown>('str', 5, true, ['x'], [5])
      .map((v): Breakage => ({ label: 'parameters of a wrong type', apply: (b, kind) => setKey(db(b, kind), 'parameters', v) })),
    fc.constant<Breakage>({ label: 'NUL in a parameter', apply: (b, kind) => setKey(db(b, kind), 'parameters', { p_nul: 'a\0b' }) }),
    fc
      .constantFrom('host', 'database', 'username', 'password')
      .map((f): Breakage => ({ label: `NUL in ${f}`, apply: (b, kind) => setKey(db(b, kind), f, 'x\0y') })),
    fc.constant<Breakage>({
      label: 'case duplicate',
      apply: (b) => {
        b.compression = false
        b.COMPRESSION = true
      },
    }),
    fc
      .integer({ min: 65, max: 1000 })
      .map((d): Breakage => ({ label: `nested ${d} deep`, apply: (b) => (b.extra = JSON.parse('['.repeat(d) + ']'.repeat(d))) })),
    fc.constant<Breakage>({
      label: 'deep case duplicate',
      apply: (b, kind) => {
        const inner = db(b, kind)
        inner.parameters = [JSON.parse('['.repeat(1000) + ']'.repeat(1000))]
        inner.Parameters = []
      },
    }),
  )
}

// ---------------------------------------------------------------------------------------------
// Raw byte mutations

const INVALID_UTF8 = [
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xff]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0x80]),
]

type Mutation = (bytes: Buffer, rnd: () => number) => Buffer

const MUTATIONS: Record<string, Mutation> = {
  flip: (b, rnd) => {
    const out = Buffer.from(b)
    const at = Math.floor(rnd() * out.length)
    out[at] = (out[at] as number) ^ (1 << Math.floor(rnd() * 8))
    return out
  },
  insertInvalidUtf8: (b, rnd) => {
    const at = Math.floor(rnd() * b.length)
    return Buffer.concat([b.subarray(0, at), INVALID_UTF8[Math.floor(rnd() * INVALID_UTF8.length)] as Buffer, b.subarray(at)])
  },
  insertRandom: (b, rnd) => {
    const at = Math.floor(rnd() * b.length)
    const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 8) }, () => Math.floor(rnd() * 256)))
    return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)])
  },
  delete: (b, rnd) => {
    const at = Math.floor(rnd() * b.length)
    return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + Math.floor(rnd() * 16))])
  },
  duplicate: (b, rnd) => {
    const at = Math.floor(rnd() * b.length)
    const len = 1 + Math.floor(rnd() * 40)
    return Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)])
  },
  truncate: (b, rnd) => b.subarray(0, Math.floor(rnd() * b.length)),
  duplicateKey: (b, rnd) => {
    const keys = [
      '"id":"other-id"',
      '"ID":"..",',
      '"destination":null',
      '"compression":"yes"',
      '"Compression":true',
      '"backup":{}',
      '"restore":5',
      '"id":5',
    ]
    const key = keys[Math.floor(rnd() * keys.length)] as string
    const text = b.toString('latin1')
    const at = rnd() < 0.5 ? text.indexOf('{') + 1 : text.lastIndexOf('}')
    const joined = at === text.indexOf('{') + 1 ? `${key},` : `,${key}`
    return Buffer.concat([b.subarray(0, at), Buffer.from(joined), b.subarray(at)])
  },
  hugeNumber: (b, rnd) => {
    const huge = ['1e400', '-1e400', '123456789012345678901234567890', '1e-400', '-0', '0.0000000000000000000000001', '9'.repeat(400)]
    const text = b.toString('latin1')
    const values = [...text.matchAll(/:(true|false|null|-?\d+(\.\d+)?|"[^"\\]{0,40}")/g)]
    const target = values[Math.floor(rnd() * values.length)]
    if (!target || target.index === undefined) return b
    return Buffer.concat([
      b.subarray(0, target.index + 1),
      Buffer.from(huge[Math.floor(rnd() * huge.length)] as string),
      b.subarray(target.index + target[0].length),
    ])
  },
  deepNesting: (b, rnd) => {
    const depth = [70, 1000, 100_000][Math.floor(rnd() * 3)] as number
    const text = b.toString('latin1')
    const at = text.lastIndexOf('}')
    const open = rnd() < 0.5 ? '[' : '{"a":'
    const close = open === '[' ? ']' : '}'
    return Buffer.concat([b.subarray(0, at), Buffer.from(`,"deep":${open.repeat(depth)}1${close.repeat(depth)}`), b.subarray(at)])
  },
  nulEscape: (b, rnd) => {
    const text = b.toString('latin1')
    const quotes = [...text.matchAll(/":"/g)]
    const target = quotes[Math.floor(rnd() * quotes.length)]
    if (!target || target.index === undefined) return b
    return Buffer.concat([b.subarray(0, target.index + 3), Buffer.from('\\u0000'), b.subarray(target.index + 3)])
  },
  bom: (b) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]),
  wrapArray: (b) => Buffer.concat([Buffer.from('['), b, Buffer.from(']')]),
}

// ---------------------------------------------------------------------------------------------
// Odd requests

const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'SEARCH',
  'PURGE',
  'REPORT',
  'LINK',
  'UNLINK',
  'QUERY',
  'ACL',
  'BIND',
  'MKCALENDAR',
  'SUBSCRIBE',
  'NOTIFY',
  'M-SEARCH',
]
const PATHS = [
  '/',
  '/backup',
  '/restore',
  '/status',
  '/backup/',
  '/restore/',
  '/backup//x',
  '//backup',
  '/backup/..',
  '/backup/.',
  '/backup/%2e%2e',
  '/backup/%2F',
  '/backup/%00',
  '/backup/%zz',
  '/backup/%',
  '/backup?id=1',
  '/backup?',
  '/restore?x=%',
  '/BACKUP',
  '/Backup/x',
  '/backup/x/cancel',
  '/backup/x/y',
  `/backup/${'a'.repeat(2000)}`,
  `/${'x'.repeat(6000)}`,
  '/restore/../backup',
  '/status/',
  '/status?verbose=1',
  '/.%2e/.%2e/etc/passwd',
  '/backup/..%2F..%2Fetc',
  '/backup/a%2Fb',
  '/backup/ok-id.',
  '/backup/-',
  '/backup/%E2%82%AC',
  '/favicon.ico',
  '/healthz',
  '/metrics',
  '/openapi.json',
  '/backup/%ff%fe',
  '/backup/;x',
  '/backup/x;y=z',
  '/backup/x#frag',
]
const CONTENT_TYPES = [
  undefined,
  'application/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/octet-stream',
  ';;;',
  'application/json\t',
]
const EXTRA_HEADERS: Record<string, string>[] = [
  {},
  { 'content-encoding': 'gzip' },
  { 'content-encoding': 'br, deflate' },
  { expect: '100-continue' },
  { 'x-forwarded-for': '127.0.0.1, 10.0.0.1' },
  { 'accept-encoding': 'gzip' },
  { accept: 'text/html' },
  { 'x-long': 'v'.repeat(8000) },
  { range: 'bytes=0-1' },
  { 'if-none-match': '*' },
  { connection: 'upgrade', upgrade: 'websocket' },
  { 'transfer-encoding': 'chunked' },
]

// ---------------------------------------------------------------------------------------------
// Cases

type FuzzCase = { category: string; run: (ctx: Context) => Promise<void> }

function note(ctx: Context, status: number | string): void {
  const key = String(status)
  ctx.result.byStatus[key] = (ctx.result.byStatus[key] ?? 0) + 1
}

function violation(ctx: Context, message: string): void {
  if (ctx.result.violations.length < 200) ctx.result.violations.push(message)
}

const preview = (bytes: Buffer | string) => {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8')
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}…(${text.length} chars)` : text)
}

/** The id the agent keys a 409 on: the first key spelled `id` whose value is a string. */
function idOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined
  for (const [k, v] of Object.entries(body)) if (k.toLowerCase() === 'id' && typeof v === 'string') return v
  return undefined
}

function judgeBytes(kind: Kind, bytes: Buffer): { verdict: Verdict; parsed: unknown } {
  let parsed: unknown
  try {
    // JSON is UTF-8 (RFC 8259): invalid bytes make a body that is not JSON; a BOM is not JSON either.
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes))
  } catch {
    return { verdict: { verdict: 'reject', reason: 'not JSON' }, parsed: undefined }
  }
  return { verdict: judgeTrigger(kind, parsed), parsed }
}

/** Checks the answer to a trigger request against the oracle and records accepted jobs. */
function checkTrigger(ctx: Context, kind: Kind, bytes: Buffer, status: number, label: string, answer = ''): void {
  const { verdict, parsed } = judgeBytes(kind, bytes)
  if (verdict.verdict === 'unsure') ctx.result.oracleUnsure++
  const id = idOf(parsed)
  if (status >= 500) return violation(ctx, `${kind} trigger (${label}) answered ${status}: ${preview(bytes)}`)
  if (status === 201 || (status >= 200 && status < 300)) {
    if (verdict.verdict === 'reject')
      violation(ctx, `${kind} job started from a body SPEC §3 rejects (${verdict.reason}; ${label}): ${preview(bytes)}`)
    if (id !== undefined) ctx.accepted[kind].add(id)
    ctx.result.jobsStarted++
    return
  }
  if (status === 409) {
    ctx.conflicts.push({ kind, id, what: `${kind} trigger (${label}) answered 409 for an id never accepted: ${preview(bytes)}` })
    return
  }
  if (status === 400) {
    if (verdict.verdict === 'accept') {
      ctx.result.stricterThanOracle++
      if (ctx.result.stricterSamples.length < 5) ctx.result.stricterSamples.push(`${label}: ${preview(bytes)} → ${answer.slice(0, 300)}`)
    }
    return
  }
  if (status === 429 || status === 413) return
  violation(ctx, `${kind} trigger (${label}) answered an unexpected ${status}: ${preview(bytes)}`)
}

async function send(
  ctx: Context,
  method: string,
  path: string,
  payload: Buffer | undefined,
  init: { auth?: string | null; headers?: Record<string, string>; from?: string } = {},
): Promise<Reply | undefined> {
  try {
    return await ctx.agent.request(method, path, undefined, {
      raw: payload,
      auth: init.auth,
      headers: init.headers,
      from: init.from,
      timeoutMs: 15_000,
    })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
    // The client library refuses some of what we generate (invalid header characters): not the agent's doing.
    if (/ERR_INVALID|ERR_UNESCAPED|ERR_HTTP_INVALID/.test(code)) {
      note(ctx, 'client-refused')
      return undefined
    }
    violation(ctx, `${method} ${path.slice(0, 80)} failed at the transport (${code}): the agent reset or dropped a well-formed request`)
    note(ctx, 'transport-error')
    return undefined
  }
}

function triggerCase(kind: Kind, bytes: Buffer, label: string, category: string, contentType?: string): FuzzCase {
  return {
    category,
    async run(ctx) {
      const { method, path } = TRIGGER[kind]
      const headers: Record<string, string> = contentType === undefined ? {} : { 'content-type': contentType }
      const reply = await send(ctx, method, path, bytes, { headers })
      if (!reply) return
      note(ctx, reply.status)
      checkTrigger(ctx, kind, bytes, reply.status, label, reply.text)
      if (reply.status >= 400 && !/^application\/json/.test(reply.headers.get('content-type') ?? ''))
        violation(ctx, `${kind} trigger answered ${reply.status} without JSON (${reply.headers.get('content-type')})`)
    },
  }
}

function oddRequestCase(
  method: string,
  path: string,
  body: Buffer | undefined,
  headers: Record<string, string>,
  validTrigger: { kind: Kind } | undefined,
): FuzzCase {
  return {
    category: 'odd method/path',
    async run(ctx) {
      const reply = await send(ctx, method, path, body, { headers })
      if (!reply) return
      note(ctx, reply.status)
      // The router drops a query and a fragment: POST /backup?x=1 is a trigger.
      const bare = path.split(/[?#]/)[0]
      const kind = method === 'POST' && bare === '/backup' ? 'backup' : method === 'PUT' && bare === '/restore' ? 'restore' : undefined
      if (kind && body !== undefined)
        return checkTrigger(ctx, kind, body, reply.status, `${method} ${path.slice(0, 40)} ${JSON.stringify(headers).slice(0, 60)}`)
      if (reply.status >= 500) violation(ctx, `${method} ${path.slice(0, 80)} answered ${reply.status}`)
      if (reply.status === 201)
        violation(
          ctx,
          `${method} ${path.slice(0, 80)} answered 201 (${validTrigger ? `body valid for ${validTrigger.kind}` : 'no trigger'})`,
        )
      // GET /metrics and /docs answer 200 in their own formats (Prometheus text, HTML); errors are JSON
      const ownFormat = reply.status === 200 && /^\/(metrics|docs)$/.test(bare ?? '')
      if (method !== 'HEAD' && reply.text !== '' && !ownFormat && !/^application\/json/.test(reply.headers.get('content-type') ?? ''))
        violation(ctx, `${method} ${path.slice(0, 80)} answered ${reply.status} with ${reply.headers.get('content-type')}, not JSON`)
    },
  }
}

function authCase(header: string | string[] | null, correct: boolean, from: string, exempt: boolean, label: string): FuzzCase {
  return {
    category: 'broken auth',
    async run(ctx) {
      const headers: Record<string, string | string[]> = {}
      if (header !== null) headers.authorization = header
      let reply: Reply | undefined
      try {
        reply = await ctx.agent.request('GET', '/status', undefined, { auth: null, headers, from, timeoutMs: 15_000 })
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? ''
        if (/ERR_INVALID|ERR_HTTP_INVALID/.test(code)) return note(ctx, 'client-refused')
        return violation(ctx, `auth case ${label} failed at the transport (${code || (error as Error).message})`)
      }
      note(ctx, reply.status)
      if (reply.status >= 500) return violation(ctx, `auth case ${label} answered ${reply.status}`)
      if (reply.status === 200 && !correct)
        return violation(ctx, `auth case ${label}: 200 without the right credentials (${JSON.stringify(header).slice(0, 120)})`)
      if (reply.status === 429 && exempt) return violation(ctx, `auth case ${label}: an exempt address was throttled`)
      if (![200, 401, 429].includes(reply.status)) violation(ctx, `auth case ${label}: unexpected ${reply.status}`)
      if (reply.status === 401 && correct) violation(ctx, `auth case ${label}: the right credentials were refused`)
    },
  }
}

function rawCase(label: string, bytes: Buffer, trigger?: { kind: Kind; body: Buffer }): FuzzCase {
  return {
    category: 'raw socket',
    async run(ctx) {
      if (trigger) ctx.agent.addSecrets(secretsOfRaw(trigger.body))
      const answer = await rawExchange(ctx.port, bytes)
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1]
      note(ctx, status ? `raw ${status}` : 'raw no answer')
      // An unanswered trigger may still have started its job: the final checks look.
      if (status === undefined && trigger) ctx.unanswered.push({ ...trigger, label: `raw ${label}` })
      if (status === undefined) return
      if (Number(status) >= 500) return violation(ctx, `raw ${label} answered ${status}: ${preview(bytes)}`)
      if (trigger) return checkTrigger(ctx, trigger.kind, trigger.body, Number(status), `raw ${label}`)
      if (status === '201') violation(ctx, `raw ${label} answered 201: ${preview(bytes)}`)
    },
  }
}

/**
 * Sends bytes on a fresh connection and half-closes it (so the server sees the end of what there
 * is and answers an incomplete request at once), then collects the answer for up to 15 s.
 */
function rawExchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let answer = ''
    const socket = net.connect(port, '127.0.0.1', () => socket.end(bytes))
    const finish = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    const timer = setTimeout(finish, 15_000)
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1')
      if (/\r\n\r\n/.test(answer) && /^HTTP\/1\.[01] \d{3}/.test(answer)) setTimeout(finish, 20)
    })
    socket.on('error', finish)
    socket.on('close', finish)
  })
}

// ---------------------------------------------------------------------------------------------
// Building the case list

function buildCases(target: FuzzTarget, count: number, seed: number): FuzzCase[] {
  const { agent, markerDir, evilScript, markerPrefix } = target
  const basic = `Basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64')}`
  let sequence = 0
  const freshId = () => `fz${seed.toString(36)}${(sequence++).toString(36)}${Math.random().toString(36).slice(2, 8)}`
  const withId = (c: BodyCase) => ({
    ...c,
    body: { ...c.body, [Object.keys(c.body).find((k) => k.toLowerCase() === 'id') ?? 'id']: freshId() },
  })
  const valid = validBodyArbitrary(markerDir, evilScript, markerPrefix)

  const share = (fraction: number) => Math.max(1, Math.round(count * fraction))
  const cases: FuzzCase[] = []
  const sampled = <T>(arb: fc.Arbitrary<T>, n: number, salt: number) => fc.sample(arb, { numRuns: n, seed: seed + salt })

  for (const c of sampled(fc.tuple(valid, fc.constantFrom(...CONTENT_TYPES)), share(0.22), 1)) {
    const body = withId(c[0])
    cases.push(triggerCase(body.kind, Buffer.from(JSON.stringify(body.body)), 'valid', 'structured valid', c[1]))
  }
  for (const [c, breakage] of sampled(fc.tuple(valid, breakages(markerDir, evilScript, markerPrefix)), share(0.22), 2)) {
    const body = withId(c)
    breakage.apply(body.body, body.kind)
    cases.push(triggerCase(body.kind, Buffer.from(JSON.stringify(body.body)), breakage.label, 'structured invalid'))
  }
  const mutationNames = Object.keys(MUTATIONS)
  for (const [c, picks, rndSeed] of sampled(
    fc.tuple(valid, fc.array(fc.constantFrom(...mutationNames), { minLength: 1, maxLength: 3 }), fc.integer()),
    share(0.26),
    3,
  )) {
    const body = withId(c)
    let state = rndSeed >>> 0
    const rnd = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32
    let bytes: Buffer = Buffer.from(JSON.stringify(body.body))
    for (const name of picks) bytes = (MUTATIONS[name] as Mutation)(bytes, rnd)
    cases.push(triggerCase(body.kind, bytes, `mutated: ${picks.join('+')}`, 'raw mutation', 'application/json'))
  }
  const oddBody = fc.oneof(fc.constant<'none'>('none'), fc.constant<'valid'>('valid'), fc.constant<'garbage'>('garbage'))
  for (const [method, path, bodyKind, headers, contentType, c] of sampled(
    fc.tuple(
      fc.constantFrom(...METHODS),
      fc.constantFrom(...PATHS),
      oddBody,
      fc.constantFrom(...EXTRA_HEADERS),
      fc.constantFrom(...CONTENT_TYPES),
      valid,
    ),
    share(0.14),
    4,
  )) {
    const body =
      bodyKind === 'none'
        ? undefined
        : bodyKind === 'valid'
          ? Buffer.from(JSON.stringify(withId(c).body))
          : Buffer.from(`\u0000\u00ff{[}${'x'.repeat(50)}`, 'latin1')
    const all: Record<string, string> = contentType === undefined ? { ...headers } : { ...headers, 'content-type': contentType }
    // A chunked body needs the client to frame it: leave that header to the raw cases.
    delete all['transfer-encoding']
    cases.push(
      oddRequestCase(
        method,
        path,
        method === 'GET' || method === 'HEAD' ? (body && bodyKind !== 'valid' ? body : undefined) : body,
        all,
        bodyKind === 'valid' ? { kind: c.kind } : undefined,
      ),
    )
  }
  const auths = authHeaders(agent.username, agent.password, basic)
  for (const [pick, last] of sampled(fc.tuple(fc.nat(auths.length - 1), fc.integer({ min: 2, max: 250 })), share(0.1), 5)) {
    const [label, header, correct] = auths[pick] as AuthVariant
    const fromOther = last % 3 !== 0
    cases.push(authCase(header, correct, fromOther ? `127.0.0.${last}` : '127.0.0.1', !fromOther, label))
  }
  const raws = rawRequests(basic, () => JSON.stringify(withId(fc.sample(valid, { numRuns: 1, seed: seed + sequence })[0] as BodyCase).body))
  for (const pick of sampled(fc.nat(raws.length - 1), share(0.06), 6)) {
    const raw = raws[pick] as RawRequest | RawTrigger
    if ('make' in raw) {
      const { bytes, trigger } = raw.make()
      cases.push(rawCase(raw.label, bytes, trigger))
    } else cases.push(rawCase(raw.label, raw.bytes()))
  }
  // Interleave the categories, the way real traffic would mix them.
  return fc.sample(fc.shuffledSubarray(cases, { minLength: cases.length, maxLength: cases.length }), {
    numRuns: 1,
    seed: seed + 7,
  })[0] as FuzzCase[]
}

type AuthVariant = [label: string, header: string | string[] | null, correct: boolean]

function authHeaders(username: string, password: string, basic: string): AuthVariant[] {
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  const nearMiss = password.slice(0, -1) + (password.endsWith('x') ? 'y' : 'x')
  return [
    ['none', null, false],
    ['empty', '', false],
    ['scheme only', 'Basic', false],
    ['scheme and space', 'Basic ', false],
    ['invalid base64', 'Basic !!!***', false],
    ['no colon', `Basic ${b64(username + password)}`, false],
    ['user only', `Basic ${b64(`${username}:`)}`, false],
    ['near miss', `Basic ${b64(`${username}:${nearMiss}`)}`, false],
    ['wrong user', `Basic ${b64(`admin:${password}`)}`, false],
    ['password as user', `Basic ${b64(`${password}:${username}`)}`, false],
    ['trailing garbage', `${basic}AAAA`, false],
    ['trailing character', `${basic}A`, false],
    ['padding in the middle', basic.replace('Basic ', 'Basic =='), false],
    ['right, unpadded', basic.replace(/=+$/, ''), true],
    ['bearer', `Bearer ${b64(`${username}:${password}`)}`, false],
    ['digest', `Digest username="${username}", response="x"`, false],
    ['long', `Basic ${'A'.repeat(7000)}`, false],
    ['unicode user', `Basic ${b64(`mänäger:${nearMiss}`)}`, false],
    ['NUL in credentials', `Basic ${b64(`${username}\0:${password}`)}`, false],
    ['extra colon', `Basic ${b64(`${username}:${password}:`)}`, false],
    ['duplicate header, first wrong', [`Basic ${b64(`${username}:${nearMiss}`)}`, basic], false],
    ['right', basic, true],
    ['right, lower-case scheme', basic.replace('Basic', 'basic'), true],
    ['right, extra spaces', basic.replace('Basic ', 'Basic    '), true],
  ]
}

interface RawRequest {
  label: string
  bytes: () => Buffer
}
/** A raw request that starts a job: made when picked, so each carries a fresh id. */
interface RawTrigger {
  label: string
  make: () => { bytes: Buffer; trigger: { kind: Kind; body: Buffer } }
}

function rawRequests(basic: string, validBody: () => string): (RawRequest | RawTrigger)[] {
  const get = (line: string, headers: string[] = []) =>
    Buffer.from(
      `${line}\r\nHost: agent\r\nAuthorization: ${basic}\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`,
      'latin1',
    )
  const requests: RawRequest[] = [
    { label: 'lower-case method', bytes: () => get('get /status HTTP/1.1') },
    { label: 'HTTP/1.0 without Host', bytes: () => Buffer.from(`GET /status HTTP/1.0\r\nAuthorization: ${basic}\r\n\r\n`) },
    { label: 'HTTP/2.0 request line', bytes: () => get('GET /status HTTP/2.0') },
    { label: 'HTTP/9.9', bytes: () => get('GET /status HTTP/9.9') },
    { label: 'no version', bytes: () => Buffer.from('GET /status\r\n\r\n') },
    { label: 'absolute form', bytes: () => get('GET http://127.0.0.1/status HTTP/1.1') },
    { label: 'asterisk form', bytes: () => get('OPTIONS * HTTP/1.1') },
    { label: 'CONNECT', bytes: () => get('CONNECT 127.0.0.1:22 HTTP/1.1') },
    { label: 'unknown method', bytes: () => get('BREW /status HTTP/1.1') },
    { label: 'space in path', bytes: () => get('GET /backup/a b HTTP/1.1') },
    { label: 'raw UTF-8 path', bytes: () => get('GET /backup/\u00e9\u00e9 HTTP/1.1') },
    {
      label: 'invalid UTF-8 path',
      bytes: () => Buffer.concat([Buffer.from('GET /backup/'), Buffer.from([0xff, 0xc0, 0x80]), get(' HTTP/1.1').subarray(1)]),
    },
    { label: 'NUL in header', bytes: () => get('GET /status HTTP/1.1', ['X-A: a\0b']) },
    { label: 'latin1 byte in header', bytes: () => get('GET /status HTTP/1.1', ['X-A: caf\u00e9']) },
    { label: 'obs-fold', bytes: () => get('GET /status HTTP/1.1', ['X-A: a', ' b']) },
    { label: 'header without colon', bytes: () => get('GET /status HTTP/1.1', ['NoColon']) },
    { label: 'huge header', bytes: () => get('GET /status HTTP/1.1', [`X-Huge: ${'h'.repeat(20_000)}`]) },
    {
      label: 'many headers',
      bytes: () =>
        get(
          'GET /status HTTP/1.1',
          Array.from({ length: 300 }, (_, i) => `X-${i}: v`),
        ),
    },
    { label: 'two Host headers', bytes: () => get('GET /status HTTP/1.1', ['Host: other']) },
    {
      label: 'broken auth in raw bytes',
      bytes: () =>
        Buffer.concat([
          Buffer.from('GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Basic '),
          Buffer.from([0xff, 0xfe, 0x00, 0x80]),
          Buffer.from('\r\nConnection: close\r\n\r\n'),
        ]),
    },
    {
      label: 'CL and TE',
      bytes: () =>
        Buffer.from(
          `POST /backup HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /status HTTP/1.1\r\nHost: a\r\n\r\n`,
        ),
    },
    {
      label: 'two lengths',
      bytes: () =>
        Buffer.from(
          `POST /backup HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nContent-Length: 2\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{}`,
        ),
    },
    {
      label: 'negative length',
      bytes: () =>
        Buffer.from(`POST /backup HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nContent-Length: -5\r\nConnection: close\r\n\r\n{}`),
    },
    {
      label: 'bad chunk size',
      bytes: () =>
        Buffer.from(
          `POST /backup HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
        ),
    },
    {
      label: 'TE with a bad coding',
      bytes: () =>
        Buffer.from(
          `POST /backup HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
        ),
    },
    { label: 'HTTP/2 preface', bytes: () => Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') },
    { label: 'TLS ClientHello', bytes: () => Buffer.from(`16030100a5010000a10303${'00'.repeat(64)}`, 'hex') },
    { label: 'random bytes', bytes: () => Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 73 + 11) % 256)) },
    { label: 'nothing but CRLF', bytes: () => Buffer.from('\r\n\r\n\r\n') },
    {
      label: 'pipelined requests',
      bytes: () => Buffer.concat([get('GET /status HTTP/1.1').subarray(0, -2), Buffer.from('\r\n'), get('GET /backup/x HTTP/1.1')]),
    },
  ]
  const chunk = (b: Buffer) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')])
  const chunked = (kind: Kind): RawTrigger => ({
    label: `chunked ${kind} trigger`,
    make() {
      const body = Buffer.from(validBody())
      const half = Math.floor(body.length / 2)
      const { method, path } = TRIGGER[kind]
      const head = Buffer.from(
        `${method} ${path} HTTP/1.1\r\nHost: a\r\nAuthorization: ${basic}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
      )
      return {
        bytes: Buffer.concat([head, chunk(body.subarray(0, half)), chunk(body.subarray(half)), Buffer.from('0\r\n\r\n')]),
        trigger: { kind, body },
      }
    },
  })
  return [...requests, chunked('backup'), chunked('restore')]
}

// ---------------------------------------------------------------------------------------------
// Running and the final checks

export async function runCampaign(target: FuzzTarget, options: CampaignOptions): Promise<CampaignResult> {
  const started = Date.now()
  const { agent } = target
  const result: CampaignResult = {
    seed: options.seed,
    requests: 0,
    byCategory: {},
    byStatus: {},
    jobsStarted: 0,
    stricterThanOracle: 0,
    stricterSamples: [],
    oracleUnsure: 0,
    violations: [],
    durationMs: 0,
    slowestMs: {},
  }
  const ctx: Context = {
    agent,
    port: Number(new URL(agent.url).port),
    basic: `Basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64')}`,
    accepted: { backup: new Set(), restore: new Set() },
    conflicts: [],
    unanswered: [],
    markerDir: target.markerDir,
    markerPrefix: target.markerPrefix,
    evilScript: target.evilScript,
    result,
  }
  const cases = buildCases(target, options.requests, options.seed)
  let next = 0
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++] as FuzzCase
      result.byCategory[c.category] = (result.byCategory[c.category] ?? 0) + 1
      result.requests++
      if (result.requests % 1000 === 0)
        options.progress?.(`${result.requests} requests, ${result.jobsStarted} jobs started, ${result.violations.length} violations`)
      const t0 = Date.now()
      await c.run(ctx)
      const ms = Date.now() - t0
      result.slowestMs[c.category] = Math.max(result.slowestMs[c.category] ?? 0, ms)
    }
  }
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker))
  const sent = Date.now()
  options.progress?.(
    `all ${result.requests} requests answered in ${((sent - started) / 1000).toFixed(1)} s; waiting for the jobs, then checking`,
  )
  await finalChecks(target, ctx)
  result.durationMs = Date.now() - started
  return result
}

async function finalChecks(target: FuzzTarget, ctx: Context): Promise<void> {
  const { agent } = target
  // Alive and serving.
  try {
    process.kill(agent.pid, 0)
  } catch {
    return violation(ctx, 'the agent process is gone')
  }
  const status = await agent.request('GET', '/status').catch((e: Error) => ({ status: e.message }))
  if (status.status !== 200) violation(ctx, `GET /status after the campaign answered ${status.status}`)

  for (const u of ctx.unanswered) {
    const id = idOf(judgeBytes(u.kind, u.body).parsed)
    if (id === undefined) continue
    const poll = await agent.request('GET', `/${u.kind}/${encodeURIComponent(id)}`)
    if (poll.status === 200) checkTrigger(ctx, u.kind, u.body, 201, `${u.label}, unanswered`)
  }
  for (const c of ctx.conflicts) if (c.id === undefined || !ctx.accepted[c.kind].has(c.id)) violation(ctx, c.what)

  // Every accepted job is registered; wait for all to end, so that no script is still writing.
  for (const kind of ['backup', 'restore'] as const) {
    for (const id of ctx.accepted[kind]) {
      const deadline = Date.now() + 120_000
      for (;;) {
        const poll = await agent.request('GET', `/${kind}/${encodeURIComponent(id)}`)
        if (poll.status !== 200) {
          violation(ctx, `accepted ${kind} ${JSON.stringify(id)} answers ${poll.status} to a poll`)
          break
        }
        if (poll.json().status !== 'RUNNING') break
        if (Date.now() > deadline) {
          violation(ctx, `${kind} ${id} still RUNNING two minutes after the campaign`)
          break
        }
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  }

  // No command ran from a parameter.
  const markers = await readdir(target.markerDir)
  if (markers.length > 0) violation(ctx, `a parameter ran a command: marker files ${markers.join(', ')}`)
  const escaped = (await readdir(tmpdir())).filter((n) => n.startsWith(target.markerPrefix))
  if (escaped.length > 0) violation(ctx, `files appeared in ${tmpdir()}: ${escaped.join(', ')}`)

  // No file outside the job directories of accepted jobs.
  const deep = join(target.sandbox, 'a', 'b', 'c', 'd')
  const allowed = (path: string): boolean => {
    const rel = relative(target.sandbox, path)
    if (['a', 'a/b', 'a/b/c', 'a/b/c/d', 'markers', 'evil.sh'].includes(rel)) return true
    // the job store (directory_state defaults to a `state` folder beside directory_backup)
    if (rel === 'a/b/c/d/state' || /^a\/b\/c\/d\/state\/jobs\.sqlite(-wal|-shm)?$/.test(rel)) return true
    for (const kind of ['backup', 'restore'] as const) {
      const base = join(deep, kind)
      if (path === base) return true
      const inside = relative(base, path)
      if (inside.startsWith('..')) continue
      const job = inside.split('/')[0] as string
      if (ctx.accepted[kind].has(job)) return true
    }
    return false
  }
  for (const path of await walk(target.sandbox))
    if (!allowed(path)) violation(ctx, `a file outside the job directories of accepted jobs: ${relative(target.sandbox, path)}`)

  // Nothing the agent logged looks like a crash.
  for (const line of agent.output().split('\n')) {
    if (/uncaught exception|unhandled rejection|unexpected error|"level":(50|60)/.test(line))
      violation(ctx, `the agent logged an error: ${line.slice(0, 300)}`)
  }
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    out.push(path)
    if (entry.isDirectory()) out.push(...(await walk(path)))
  }
  return out
}

export function summary(result: CampaignResult): string {
  const lines = [
    `fuzz campaign: seed ${result.seed}, ${result.requests} requests in ${(result.durationMs / 1000).toFixed(1)} s (${Math.round(result.requests / (result.durationMs / 1000))}/s)`,
    `  by category: ${Object.entries(result.byCategory)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `  slowest:     ${Object.entries(result.slowestMs)
      .map(([k, v]) => `${k} ${v} ms`)
      .join(', ')}`,
    `  by status:   ${Object.entries(result.byStatus)
      .sort()
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}`,
    `  jobs started: ${result.jobsStarted}; oracle unsure: ${result.oracleUnsure}; agent stricter than the oracle: ${result.stricterThanOracle}`,
    ...result.stricterSamples.map((s) => `    stricter: ${s}`),
    `  violations: ${result.violations.length}`,
    ...result.violations.slice(0, 30).map((v) => `    ✖ ${v}`),
  ]
  return lines.join('\n')
}
