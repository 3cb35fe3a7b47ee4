// Parameter names by allowlist and the bounds on what reaches a script (SPEC §3, §5), checked
// against an oracle written here from the documented rule (README, docs/SECURITY.md), not from
// src/http/trigger.ts or src/scripts/*.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { loadConfig } from '../../../src/config.ts'
import { parseTrigger } from '../../../src/http/trigger.ts'

const required = { client_username: 'u', client_password: 'p', directory_backup: '/b', directory_restore: '/r' }
const configListing = (listed: string[]) => loadConfig({ ...required, script_parameter_names: listed.join(',') }).config
const config = configListing([])

// ------------------------------------------------------------------ the oracle (documented rule)

const PASSTHROUGH = ['PATH', 'LD_LIBRARY_PATH', 'LANG', 'TZ', 'HOME']
const RESERVED = [
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
  'POSIXLY_CORRECT',
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
  'OPENSSL_CONF',
  'OPENSSL_ENGINES',
  'OPENSSL_MODULES',
  'TAR_OPTIONS',
  ...PASSTHROUGH,
]
const RESERVED_PREFIXES = ['agent_', 'ld_', 'bash_', 'malloc_', 'npm_config_']

const isLowerLetter = (c: string) => c >= 'a' && c <= 'z'
const isDigit = (c: string) => c >= '0' && c <= '9'

/** Would the documented rule accept `name` with `listed` as script_parameter_names? */
function oracleAccepts(name: string, listed: readonly string[]): boolean {
  if (new TextEncoder().encode(name).length > 128) return false
  const lower = name.toLowerCase()
  if (RESERVED.some((r) => r.toLowerCase() === lower)) return false
  if (RESERVED_PREFIXES.some((p) => lower.startsWith(p))) return false
  if (lower.endsWith('_proxy')) return false
  if (name === '__proto__') return false // would set a JavaScript object's prototype, not a key
  const chars = [...name]
  const plainLowerCase =
    chars.length > 0 &&
    (isLowerLetter(chars[0] as string) || chars[0] === '_') &&
    chars.every((c) => isLowerLetter(c) || isDigit(c) || c === '_')
  return plainLowerCase || listed.includes(name)
}

// ------------------------------------------------------------------ helpers

const db = (parameters: unknown, extra: Record<string, unknown> = {}) => ({
  host: 'h',
  username: 'u',
  password: 'p',
  database: 'd',
  parameters,
  ...extra,
})
const body = (parameters: unknown = null, extra: Record<string, unknown> = {}, destination: Record<string, unknown> = {}) => ({
  id: 'job-1',
  destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's', endpoint: 'e', ...destination },
  backup: db(parameters, extra),
})

function errorsOf(parsed: ReturnType<typeof parseTrigger>): string {
  return parsed.ok ? '' : parsed.errors.join('\n')
}

/** Spells `text` in a case chosen per character. */
const anyCase = (text: string) =>
  fc
    .array(fc.boolean(), { minLength: text.length, maxLength: text.length })
    .map((upper) => [...text].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(''))

const lowerCaseName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}$/)
const names = fc.oneof(
  { weight: 4, arbitrary: lowerCaseName },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,20}$/) },
  { weight: 3, arbitrary: fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,20}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z][a-z]*[A-Z][a-zA-Z]*$/) }, // camelCase: retryCount
  { weight: 2, arbitrary: fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_.-]{0,12}$/) },
  { weight: 2, arbitrary: fc.stringMatching(/^[0-9][a-z0-9_]{0,10}$/) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.tuple(lowerCaseName, fc.constantFrom('é', 'ß', 'ı', 'K', '\u0130')).map(([a, b]) => a + b) },
  { weight: 3, arbitrary: fc.tuple(fc.stringMatching(/^[a-z_]{0,12}$/), anyCase('_proxy')).map(([a, b]) => a + b) },
  { weight: 1, arbitrary: anyCase('http_proxy') },
  { weight: 3, arbitrary: fc.tuple(anyCase('npm_config_'), fc.stringMatching(/^[a-z_]{0,12}$/)).map(([a, b]) => a + b) },
  { weight: 3, arbitrary: fc.constantFrom(...RESERVED).chain(anyCase) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom('AGENT_', 'LD_', 'BASH_FUNC_', 'MALLOC_'), fc.stringMatching(/^[A-Za-z0-9_]{0,8}$/))
      .chain(([p, s]) => anyCase(p + s)),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z_]{120,140}$/) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('TAR_OPTIONS', 'OPENSSL_CONF', 'PGPORT', 'retryCount', 'LC_ALL', 'PAGER', 'EDITOR', 'GIT_SSH_COMMAND'),
  },
)

// ------------------------------------------------------------------ names

describe('parameter names: lower case, or listed in script_parameter_names; never reserved', () => {
  it('agrees with the oracle on generated names, listed and unlisted', () => {
    fc.assert(
      fc.property(
        fc.array(names, { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        (candidates, listing) => {
          // Only names the setting can hold can be listed (identifiers: the variableNames check).
          const listed = candidates.filter((n, i) => listing[i] && /^[A-Za-z_][A-Za-z0-9_]*$/.test(n))
          const cfg = configListing(listed)
          assert.deepEqual(cfg.scriptParameterNames, listed)
          for (const name of candidates) {
            const parsed = parseTrigger('backup', body([{ [name]: 'v' }]), cfg)
            const expected = oracleAccepts(name, listed)
            assert.equal(parsed.ok, expected, `${JSON.stringify(name)} listed=${listed.includes(name)}: ${errorsOf(parsed)}`)
            if (parsed.ok) {
              assert.deepEqual(parsed.value.database.parameters, { [name]: 'v' })
            } else {
              const message = errorsOf(parsed)
              assert.ok(
                message.includes(name.slice(0, 64)) || message.includes(JSON.stringify(name.slice(0, 64))),
                `names the parameter: ${message}`,
              )
              assert.match(message, /script_parameter_names/)
            }
          }
        },
      ),
      { numRuns: 1500 },
    )
  })

  const cases: [name: string, listed: string[], accepted: boolean][] = [
    ['key', [], true],
    ['retries', [], true],
    ['_x', [], true],
    ['port', [], true],
    ['retryCount', [], false],
    ['retryCount', ['retryCount'], true],
    ['PGPORT', [], false],
    ['PGPORT', ['PGPORT'], true],
    ['PGPORT', ['pgport'], false],
    ['TAR_OPTIONS', [], false],
    ['TAR_OPTIONS', ['TAR_OPTIONS'], false],
    ['OPENSSL_CONF', ['OPENSSL_CONF'], false],
    ['BASH_ENV', ['BASH_ENV'], false],
    ['bash_env', [], false],
    ['LD_PRELOAD', ['LD_PRELOAD'], false],
    ['MALLOC_PERTURB_', ['MALLOC_PERTURB_'], false],
    ['http_proxy', [], false],
    ['HTTP_PROXY', ['HTTP_PROXY'], false],
    ['no_proxy', [], false],
    ['Https_Proxy', ['Https_Proxy'], false],
    ['npm_config_script_shell', [], false],
    ['NPM_CONFIG_PREFIX', ['NPM_CONFIG_PREFIX'], false],
    ['proxy', [], true],
    ['db_password', [], false],
    ['path', [], false],
    ['a-b', [], false],
    ['a.b', [], false],
    ['1abc', [], false],
    ['é', [], false],
    ['', [], false],
  ]
  for (const [name, listed, accepted] of cases) {
    it(`${JSON.stringify(name)} listing ${JSON.stringify(listed)}: ${accepted ? 'accepted' : '400'}`, () => {
      const parsed = parseTrigger('backup', body({ [name]: 'v' }), configListing(listed))
      assert.equal(parsed.ok, accepted, errorsOf(parsed))
      assert.equal(oracleAccepts(name, listed), accepted, 'the oracle agrees with the table')
      if (!accepted) assert.match(errorsOf(parsed), /script_parameter_names/)
    })
  }

  it('refuses a passthrough name in any case, even when listed', () => {
    const cfg = loadConfig({ ...required, script_env_passthrough: 'PATH,MY_TOOL_HOME', script_parameter_names: 'MY_TOOL_HOME' }).config
    for (const name of ['MY_TOOL_HOME', 'my_tool_home']) {
      const parsed = parseTrigger('backup', body({ [name]: 'v' }), cfg)
      assert.equal(parsed.ok, false, name)
      assert.match(errorsOf(parsed), /script_env_passthrough/)
    }
  })

  it('refuses PATH, HOME, LANG, TZ and LD_LIBRARY_PATH even when script_env_passthrough leaves them out and they are listed', () => {
    // PATH from a request would pick the programs a root script runs (and the bash the agent starts).
    const cfg = loadConfig({
      ...required,
      script_env_passthrough: 'MY_TOOL_HOME',
      script_parameter_names: 'PATH,HOME,LANG,TZ,LD_LIBRARY_PATH,Path',
    }).config
    assert.deepEqual(cfg.scriptEnvPassthrough, ['MY_TOOL_HOME'])
    for (const name of ['PATH', 'HOME', 'LANG', 'TZ', 'LD_LIBRARY_PATH', 'Path', 'path', 'home', 'tz']) {
      const parsed = parseTrigger('backup', body({ [name]: '/tmp/planted' }), cfg)
      assert.equal(parsed.ok, false, name)
      assert.match(errorsOf(parsed), /is reserved/)
    }
    assert.equal(parseTrigger('backup', body({ pathname: 'x', home_dir: 'y' }), cfg).ok, true)
  })

  it('refuses __proto__, which a JavaScript object would swallow instead of passing on', () => {
    for (const parameters of [JSON.parse('{"__proto__": "v"}'), JSON.parse('[{"__proto__": "v"}]')]) {
      const parsed = parseTrigger('backup', body(parameters), configListing(['__proto__']))
      assert.equal(parsed.ok, false)
      assert.match(errorsOf(parsed), /__proto__/)
    }
  })

  it('refuses a name longer than 128 bytes, counting UTF-8 bytes', () => {
    const listed = ['A'.repeat(128), 'A'.repeat(129)]
    const cfg = configListing(listed)
    assert.equal(parseTrigger('backup', body({ ['a'.repeat(128)]: 'v' }), cfg).ok, true)
    assert.equal(parseTrigger('backup', body({ [listed[0] as string]: 'v' }), cfg).ok, true)
    for (const name of ['a'.repeat(129), listed[1] as string]) {
      const parsed = parseTrigger('backup', body({ [name]: 'v' }), cfg)
      assert.equal(parsed.ok, false)
      assert.match(errorsOf(parsed), /longer than 128 bytes/)
    }
  })
})

// ------------------------------------------------------------------ limits

describe('bounds on every string that reaches a script', () => {
  const KiB = 1024
  const refusedNaming = (parsed: ReturnType<typeof parseTrigger>, field: string) => {
    assert.equal(parsed.ok, false, `${field} over the limit is accepted`)
    assert.ok(
      errorsOf(parsed)
        .split('\n')
        .some((m) => m.startsWith(`${field} `)),
      `names ${field}: ${errorsOf(parsed)}`,
    )
  }

  it('accepts a parameter value of exactly 32 KiB and refuses one byte more, counting UTF-8 bytes', () => {
    assert.equal(parseTrigger('backup', body({ v: 'x'.repeat(32 * KiB) }), config).ok, true)
    refusedNaming(parseTrigger('backup', body({ v: 'x'.repeat(32 * KiB + 1) }), config), 'backup.parameters.v')
    // 16,384 two-byte characters are 32 KiB; one more ASCII byte is over, at 16,385 characters.
    assert.equal(parseTrigger('backup', body({ v: 'é'.repeat(16 * KiB) }), config).ok, true)
    refusedNaming(parseTrigger('backup', body({ v: `${'é'.repeat(16 * KiB)}a` }), config), 'backup.parameters.v')
    refusedNaming(parseTrigger('backup', body({ v: '😀'.repeat(8 * KiB + 1) }), config), 'backup.parameters.v')
  })

  it('bounds the database fields, the encryption key and the storage fields the same way', () => {
    const over = `${'é'.repeat(16 * KiB)}x`
    const exact = 'é'.repeat(16 * KiB)
    const fields: [string, (v: string) => ReturnType<typeof parseTrigger>][] = [
      ['backup.password', (v) => parseTrigger('backup', body(null, { password: v }), config)],
      ['backup.host', (v) => parseTrigger('backup', body(null, { host: v }), config)],
      ['backup.username', (v) => parseTrigger('backup', body(null, { username: v }), config)],
      ['backup.database', (v) => parseTrigger('backup', body(null, { database: v }), config)],
      ['encryption_key', (v) => parseTrigger('backup', { ...body(), encryption_key: v }, config)],
      ['destination.bucket', (v) => parseTrigger('backup', body(null, {}, { bucket: v, skipStorage: true }), config)],
      ['destination.authKey', (v) => parseTrigger('backup', body(null, {}, { authKey: v, skipStorage: true }), config)],
      ['destination.authSecret', (v) => parseTrigger('backup', body(null, {}, { authSecret: v, skipStorage: true }), config)],
      ['destination.region', (v) => parseTrigger('backup', body(null, {}, { region: v, skipStorage: true }), config)],
      [
        'destination.filenamePrefix',
        (v) => parseTrigger('backup', body(null, {}, { filenamePrefix: `${v.slice(0, -1)}/`, skipStorage: true }), config),
      ],
      [
        'destination.password',
        (v) =>
          parseTrigger(
            'backup',
            body(
              null,
              {},
              { type: 'SWIFT', authUrl: 'http://s/auth/v1.0', username: 'u', password: v, container_name: 'c', skipStorage: true },
            ),
            config,
          ),
      ],
      [
        'destination.username',
        (v) =>
          parseTrigger(
            'backup',
            body(
              null,
              {},
              { type: 'SWIFT', authUrl: 'http://s/auth/v1.0', username: v, password: 'p', container_name: 'c', skipStorage: true },
            ),
            config,
          ),
      ],
      [
        'destination.container_name',
        (v) =>
          parseTrigger(
            'backup',
            body(
              null,
              {},
              { type: 'SWIFT', authUrl: 'http://s/auth/v1.0', username: 'u', password: 'p', container_name: v, skipStorage: true },
            ),
            config,
          ),
      ],
      [
        'destination.domain',
        (v) =>
          parseTrigger(
            'backup',
            body(
              null,
              {},
              {
                type: 'SWIFT',
                authUrl: 'http://s/v3',
                domain: v,
                project_name: 'p',
                username: 'u',
                password: 'p',
                container_name: 'c',
                skipStorage: true,
              },
            ),
            config,
          ),
      ],
    ]
    for (const [field, parse] of fields) {
      assert.equal(parse(exact).ok, true, `${field} of exactly 32 KiB: ${errorsOf(parse(exact))}`)
      refusedNaming(parse(over), field)
    }
  })

  it('accepts 256 parameters and refuses 257', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ [`p${i}`]: 'x' }))
    assert.equal(parseTrigger('backup', body(many(256)), config).ok, true)
    const parsed = parseTrigger('backup', body(many(257)), config)
    refusedNaming(parsed, 'backup.parameters')
    assert.match(errorsOf(parsed), /at most 256/)
    // As an object too.
    refusedNaming(parseTrigger('backup', body(Object.assign({}, ...many(257))), config), 'backup.parameters')
  })

  it('refuses more than 512 KiB in all, parameter names included', () => {
    // The fixed strings of body(): id 5, host/username/password/database 4, bucket, authKey,
    // authSecret, endpoint 4. Sixteen names p00…p15: 48 bytes.
    const fixed = 5 + 4 + 4 + 16 * 3
    const params = (last: number) =>
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`p${String(i).padStart(2, '0')}`, 'x'.repeat(i < 15 ? 32 * KiB : last)]))
    const lastAtLimit = 512 * KiB - fixed - 15 * 32 * KiB
    assert.ok(lastAtLimit > 0 && lastAtLimit <= 32 * KiB)
    const atLimit = parseTrigger('backup', body(params(lastAtLimit)), config)
    assert.equal(atLimit.ok, true, errorsOf(atLimit))
    const over = parseTrigger('backup', body(params(lastAtLimit + 1)), config)
    assert.equal(over.ok, false)
    assert.match(errorsOf(over), /^backup: .*512 KiB/m)
  })
})

// ------------------------------------------------------------------ prefixes the agent stores under

describe('filenamePrefix where the agent stores under it', () => {
  const KiB = 1024
  /** `bytes` UTF-8 bytes of folders of `folder` bytes each (3-byte characters, ASCII to fill), ending in /. */
  const prefixOf = (bytes: number, folder: number) => {
    const parts: string[] = []
    let left = bytes - 1 // the final /
    while (left > 0) {
      const size = Math.min(folder, left)
      parts.push('€'.repeat(Math.floor(size / 3)) + 'p'.repeat(size % 3))
      left -= size + 1 // a / between folders
    }
    const prefix = `${parts.join('/')}/`
    return prefix
  }
  const backup = (destination: Record<string, unknown>) => parseTrigger('backup', { id: 'j', destination, backup: db(null) }, config)
  const s3 = { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's' }

  it('S3 and LOCAL: at most 512 bytes (an S3 key is at most 1024), counting UTF-8 bytes', () => {
    for (const type of [s3, { type: 'LOCAL' }]) {
      const atLimit = prefixOf(512, 200)
      assert.equal(new TextEncoder().encode(atLimit).length, 512)
      assert.equal(backup({ ...type, filenamePrefix: atLimit }).ok, true, errorsOf(backup({ ...type, filenamePrefix: atLimit })))
      const over = backup({ ...type, filenamePrefix: `p${atLimit}` })
      assert.equal(over.ok, false)
      assert.match(errorsOf(over), /^destination\.filenamePrefix is 513 bytes/m)
    }
  })

  it('LOCAL: each folder at most 255 bytes (NAME_MAX)', () => {
    const atLimit = `${'€'.repeat(85)}/`
    assert.equal(backup({ type: 'LOCAL', filenamePrefix: atLimit }).ok, true)
    const over = backup({ type: 'LOCAL', filenamePrefix: `${'€'.repeat(85)}x/` })
    assert.equal(over.ok, false)
    assert.match(errorsOf(over), /folder name of 256 bytes/)
    // S3 keys have no folders: a 256-byte part is fine there
    assert.equal(backup({ ...s3, filenamePrefix: `${'€'.repeat(85)}x/` }).ok, true)
  })

  it('skipStorage and Swift only pass the prefix on (scripts, polling body): 32 KiB', () => {
    const long = prefixOf(32 * KiB, 4000)
    for (const destination of [
      { ...s3, skipStorage: true },
      { type: 'LOCAL', skipStorage: true },
      { type: 'SWIFT', authUrl: 'http://s/auth/v1.0', username: 'u', password: 'p', container_name: 'c' },
    ]) {
      const parsed = backup({ ...destination, filenamePrefix: long })
      assert.equal(parsed.ok, true, `${destination.type}: ${errorsOf(parsed)}`)
    }
  })
})

// ------------------------------------------------------------------ restore filenames

describe('restore filenames', () => {
  const restore = (filename: string) =>
    parseTrigger(
      'restore',
      { id: 'r', destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's', filename }, restore: db(null) },
      config,
    )

  it('accepts 200 UTF-8 bytes and refuses 201', () => {
    assert.equal(restore('a'.repeat(200)).ok, true)
    assert.equal(restore('é'.repeat(100)).ok, true)
    for (const name of ['a'.repeat(201), `${'é'.repeat(100)}a`, '😀'.repeat(51)]) {
      const parsed = restore(name)
      assert.equal(parsed.ok, false, name)
      assert.match(errorsOf(parsed), /^destination\.filename .*200 bytes/)
    }
  })

  it('refuses a .osb name that would decode to "", "." or ".."', () => {
    for (const name of ['.osb', '..osb', '...osb']) {
      const parsed = restore(name)
      assert.equal(parsed.ok, false, name)
      assert.match(errorsOf(parsed), /^destination\.filename /)
    }
    for (const name of ['a.osb', '....osb', '.a.osb', 'x.OSB', 'osb']) assert.equal(restore(name).ok, true, name)
  })
})

// ------------------------------------------------------------------ skipStorage keeps required fields

describe('destination fields are required even with skipStorage', () => {
  const withSkip = (destination: Record<string, unknown>) =>
    parseTrigger('backup', { id: 'j', destination: { skipStorage: true, ...destination }, backup: db(null) }, config)

  it('S3: bucket, authKey, authSecret', () => {
    const parsed = withSkip({ type: 'S3' })
    assert.deepEqual(parsed.ok ? [] : parsed.errors, [
      'destination.bucket is required for S3',
      'destination.authKey is required for S3',
      'destination.authSecret is required for S3',
    ])
    assert.equal(withSkip({ type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's' }).ok, true)
  })

  it('SWIFT: authUrl, username, password, container_name, and the Keystone v3 fields', () => {
    const parsed = withSkip({ type: 'SWIFT' })
    assert.deepEqual(parsed.ok ? [] : parsed.errors, [
      'destination.authUrl is required for SWIFT',
      'destination.username is required for SWIFT',
      'destination.password is required for SWIFT',
      'destination.container_name is required for SWIFT',
    ])
    const v3 = withSkip({ type: 'SWIFT', authUrl: 'http://ks/v3', username: 'u', password: 'p', container_name: 'c' })
    assert.match(errorsOf(v3), /destination\.domain is required/)
    assert.match(errorsOf(v3), /destination\.project_name is required/)
    assert.equal(
      withSkip({
        type: 'SWIFT',
        authUrl: 'http://ks/v3',
        username: 'u',
        password: 'p',
        container_name: 'c',
        domain: 'd',
        project_name: 'p',
      }).ok,
      true,
    )
  })

  it('with the skip_storage setting as well', () => {
    const cfg = loadConfig({ ...required, skip_storage: 'true' }).config
    const parsed = parseTrigger('backup', { id: 'j', destination: { type: 'S3' }, backup: db(null) }, cfg)
    assert.match(errorsOf(parsed), /destination\.bucket is required/)
  })
})
