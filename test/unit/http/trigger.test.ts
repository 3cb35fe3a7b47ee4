import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { loadConfig } from '../../../src/config.ts'
import { triggerId } from '../../../src/http/ids.ts'
import { parseTrigger } from '../../../src/http/trigger.ts'
import { authVersion } from '../../../src/storage/swift/keystone.ts'

const { config } = loadConfig({ client_username: 'u', client_password: 'p', directory_backup: '/b', directory_restore: '/r' })

const body = (destination: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id: 'job-1',
  destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's', ...destination },
  backup: { host: 'h', username: 'u', password: 'p', database: 'd' },
  ...extra,
})

function s3(destination: Record<string, unknown>) {
  const parsed = parseTrigger('backup', body(destination), config)
  if (!parsed.ok) throw new Error(parsed.errors.join('; '))
  if (parsed.value.destination.type !== 'S3') throw new Error('not S3')
  return parsed.value.destination
}

describe('parseTrigger: the S3 scheme rule of SPEC §3', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ endpoint: 'minio.local:9000' }, 'https://minio.local:9000'],
    [{ endpoint: 'http://minio.local:9000' }, 'http://minio.local:9000'],
    [{ endpoint: 'HTTPS://minio.local' }, 'https://minio.local'],
    [{ endpoint: 'minio.local:9000', useSSL: false }, 'http://minio.local:9000'],
    [{ endpoint: 'minio.local:9000', skipSSL: true }, 'http://minio.local:9000'],
    [{ endpoint: 'minio.local:9000', skipSSL: false }, 'https://minio.local:9000'],
    [{ endpoint: 'minio.local:9000', useSSL: true, skipSSL: null }, 'https://minio.local:9000'],
    [{ endpoint: 'http://minio.local:9000', useSSL: false }, 'http://minio.local:9000'],
    [{ endpoint: '' }, 'https://s3.amazonaws.com'],
    [{ endpoint: null }, 'https://s3.amazonaws.com'],
    [{ endpoint: '[::1]:9000', useSSL: false }, 'http://[::1]:9000'],
  ]
  for (const [destination, url] of cases) {
    it(`${JSON.stringify(destination)} -> ${url}`, () => {
      const d = s3(destination)
      assert.equal(d.endpointUrl, url)
      assert.equal(d.useSSL, url.startsWith('https:'))
    })
  }

  for (const destination of [
    { endpoint: 'https://x', useSSL: false },
    { endpoint: 'http://x', skipSSL: false },
    { endpoint: 'x', useSSL: true, skipSSL: true },
    { endpoint: 'ftp://x' },
    { endpoint: 'x/path' },
    { endpoint: 'user:pw@x' },
  ]) {
    it(`${JSON.stringify(destination)} is a 400`, () => {
      const parsed = parseTrigger('backup', body(destination), config)
      assert.equal(parsed.ok, false)
      if (!parsed.ok) assert.match(parsed.errors.join(), /destination\.(endpoint|useSSL|skipSSL)/)
    })
  }
})

describe('parseTrigger', () => {
  it('echoes the endpoint as given and keeps a null region undefined', () => {
    const d = s3({ endpoint: 'minio.local:9000', region: null })
    assert.equal(d.endpoint, 'minio.local:9000')
    assert.equal(d.region, undefined)
  })

  it('renders parameters from a list of one-key objects or from an object', () => {
    for (const parameters of [[{ a: 'x' }, { n: 2 }, { f: false }], { a: 'x', n: 2, f: false }]) {
      const parsed = parseTrigger(
        'backup',
        { ...body({}), backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters } },
        config,
      )
      assert.ok(parsed.ok)
      if (parsed.ok) assert.deepEqual(parsed.value.database.parameters, { a: 'x', n: '2', f: 'false' })
    }
  })

  it('passes a null encryption key as an empty string and "none" as given', () => {
    for (const [key, expected] of [
      [null, ''],
      [undefined, ''],
      ['none', 'none'],
      ['k', 'k'],
    ] as const) {
      const parsed = parseTrigger('backup', body({}, { encryption_key: key }), config)
      assert.ok(parsed.ok)
      if (parsed.ok) assert.equal(parsed.value.encryptionKey, expected)
    }
  })

  it('requires the Keystone v3 fields only for a /v3 auth URL', () => {
    const swift = (authUrl: string) =>
      parseTrigger('backup', body({ type: 'SWIFT', authUrl, username: 'u', password: 'p', container_name: 'c' }), config)
    const v3 = swift('http://ks:5000/v3')
    assert.equal(v3.ok, false)
    if (!v3.ok)
      assert.deepEqual(v3.errors, [
        'destination.domain is required for Keystone v3 (authUrl ending in /v3)',
        'destination.project_name is required for Keystone v3 (authUrl ending in /v3)',
      ])
    assert.equal(swift('http://swift:8080/auth/v1.0').ok, true)
  })

  it('does not require a restore filename with skipStorage (the storage fields stay required)', () => {
    const parsed = parseTrigger(
      'restore',
      {
        id: 'r',
        destination: { type: 'S3', skipStorage: true, bucket: 'b', authKey: 'k', authSecret: 's' },
        restore: { host: 'h', username: 'u', password: '', database: 'd' },
      },
      config,
    )
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.errors.join())
  })

  it('rejects NUL characters in strings', () => {
    const parsed = parseTrigger('backup', { ...body({}), backup: { host: 'h\0x', username: 'u', password: 'p', database: 'd' } }, config)
    assert.equal(parsed.ok, false)
    if (!parsed.ok) assert.match(parsed.errors.join(), /backup\.host must not contain NUL/)
  })

  it('finds the id case-insensitively before validation', () => {
    assert.equal(triggerId({ ID: 'x', destination: 5 }), 'x')
    assert.equal(triggerId({ id: 5 }), undefined)
    assert.equal(triggerId([]), undefined)
  })
})

describe('parseTrigger: parameters that would load code', () => {
  it('rejects the C library and interpreter hooks like the shell ones', () => {
    for (const name of [
      'GCONV_PATH',
      'GLIBC_TUNABLES',
      'LOCPATH',
      'MALLOC_CHECK_',
      'PERL5OPT',
      'PERL5DB',
      'PYTHONPATH',
      'PYTHONSTARTUP',
      'NODE_OPTIONS',
      'RUBYOPT',
      'JAVA_TOOL_OPTIONS',
      '_JAVA_OPTIONS',
    ]) {
      const parsed = parseTrigger(
        'backup',
        { ...body({}), backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: { [name]: 'x' } } },
        config,
      )
      assert.equal(parsed.ok, false, name)
      if (!parsed.ok) assert.match(parsed.errors.join(), new RegExp(`backup\\.parameters\\.${name} is reserved`))
    }
  })
})

describe('parseTrigger: LOCAL names starting with "." are the agent\'s own files', () => {
  const restore = (destination: Record<string, unknown>) =>
    parseTrigger(
      'restore',
      { id: 'job-1', destination: { type: 'LOCAL', ...destination }, restore: { host: 'h', username: 'u', password: 'p', database: 'd' } },
      config,
    )
  const refused = ['.x.meta.json', '.dump.sql', '.x.partial-abc']
  for (const filename of refused) {
    it(`refuses a restore of ${filename}`, () => {
      const parsed = restore({ filename })
      assert.equal(parsed.ok, false)
      if (!parsed.ok) assert.match(parsed.errors.join('; '), /destination\.filename for LOCAL/)
    })
  }
  it('refuses a prefix folder starting with "." and accepts plain ones and dots inside names', () => {
    const parsed = restore({ filename: 'a.sql', filenamePrefix: 'pg/.hidden/' })
    assert.equal(parsed.ok, false)
    if (!parsed.ok) assert.match(parsed.errors.join('; '), /filenamePrefix for LOCAL/)
    assert.equal(restore({ filename: 'a.meta.json', filenamePrefix: 'pg/x.y/' }).ok, true)
  })
  it('leaves S3 object names alone (a dot-name is an ordinary S3 key)', () => {
    const parsed = parseTrigger(
      'restore',
      {
        id: 'job-1',
        destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's', filename: '.x.sql' },
        restore: { host: 'h', username: 'u', password: 'p', database: 'd' },
      },
      config,
    )
    assert.equal(parsed.ok, true)
  })
})

describe('parseTrigger: Swift auth URLs', () => {
  const swift = (destination: Record<string, unknown>) =>
    parseTrigger(
      'backup',
      body({ type: 'SWIFT', username: 'u', password: 'p', container_name: 'c', skipStorage: true, ...destination }),
      config,
    )

  // Written from docs/SWIFT.md: the version is the URL path's last segment, trailing slashes aside.
  const cases: [suffix: string, needs: string[]][] = [
    ['/v3', ['domain', 'project_name']],
    ['/v3/', ['domain', 'project_name']],
    ['/v3//', ['domain', 'project_name']],
    ['/identity/v3', ['domain', 'project_name']],
    ['/v3?region=x', ['domain', 'project_name']],
    ['/v3#x', ['domain', 'project_name']],
    ['/v2.0', ['project_name']],
    ['/v2.0/', ['project_name']],
    ['/v2', ['project_name']],
    ['/identity/v2.0//', ['project_name']],
    ['/auth/v1.0', []],
    ['/auth/v1.0/', []],
    ['/V3', []],
    ['/v30', []],
    ['/v3/x', []],
  ]
  for (const [suffix, needs] of cases) {
    it(`${suffix}: requires ${needs.join(' and ') || 'nothing more'}, as the login uses`, () => {
      const authUrl = `http://ks:5000${suffix}`
      const without = swift({ authUrl })
      const missing = without.ok ? [] : without.errors.map((e) => /^destination\.(\w+) is required/.exec(e)?.[1])
      assert.deepEqual(missing, needs, without.ok ? '' : without.errors.join('; '))
      assert.equal(swift({ authUrl, domain: 'd', project_name: 'p' }).ok, true)
    })
  }

  it('requires whatever the login of that URL uses, for generated paths', () => {
    const segment = fc.constantFrom('v3', 'v2.0', 'v2', 'auth', 'v1.0', 'V3', 'identity', 'v3.0', '')
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 4 }), fc.constantFrom('', '/', '//', '?a=1', '#f'), (segments, tail) => {
        const authUrl = `https://ks${segments.length ? '/' : ''}${segments.join('/')}${tail}`
        const version = authVersion(authUrl)
        const parsed = swift({ authUrl })
        const needed = version === 'v3' ? ['domain', 'project_name'] : version === 'v2.0' ? ['project_name'] : []
        const missing = parsed.ok ? [] : parsed.errors.map((e) => /^destination\.(\w+) is required/.exec(e)?.[1])
        assert.deepEqual(missing, needed, `${authUrl} (${version}): ${parsed.ok ? 'accepted' : parsed.errors.join('; ')}`)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses credentials in the auth URL (it is echoed in polling bodies and logs) without echoing them', () => {
    for (const authUrl of ['http://admin:hunter2pw@ks:5000/v3', 'http://admin@ks:5000/v3', 'https://:hunter2pw@ks/auth/v1.0']) {
      const parsed = swift({ authUrl, domain: 'd', project_name: 'p' })
      assert.equal(parsed.ok, false, authUrl)
      const message = parsed.ok ? '' : parsed.errors.join('; ')
      assert.match(message, /destination\.authUrl must not contain a user or password/)
      assert.doesNotMatch(message, /hunter2pw/)
    }
  })
})

describe('parseTrigger: numbers in parameters', () => {
  const rendered = (value: unknown) => {
    const parsed = parseTrigger(
      'backup',
      { ...body({}), backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: { n: value } } },
      config,
    )
    if (!parsed.ok) throw new Error(parsed.errors.join('; '))
    return parsed.value.database.parameters.n
  }

  it('are written in plain decimal that reads back as the same number, however large or small', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        const text = rendered(n) as string
        assert.match(text, /^-?\d+(\.\d+)?$/, `${n} -> ${text}`)
        assert.ok(Number(text) === n, `${n} -> ${text}`) // (-0 is written 0)
      }),
      { numRuns: 2000 },
    )
    for (const [n, text] of [
      [1e-21, '0.000000000000000000001'],
      [1.5e21, '1500000000000000000000'],
      [-1e-7, '-0.0000001'],
      [2, '2'],
      [-0, '0'],
      [0.1, '0.1'],
      [5e-324, `0.${'0'.repeat(323)}5`],
    ] as const) {
      assert.equal(rendered(n), text)
    }
  })
})

describe('parseTrigger: a parameter named twice in a list', () => {
  const parse = (parameters: unknown) =>
    parseTrigger('backup', { ...body({}), backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters } }, config)
  it('is a 400 with different values (which would the script get?), without echoing them', () => {
    const parsed = parse([{ port: '5432' }, { retries: 2 }, { port: 'hunter2-secret' }])
    assert.equal(parsed.ok, false)
    if (!parsed.ok) {
      assert.match(parsed.errors.join('; '), /backup\.parameters\.port is given twice with different values/)
      assert.doesNotMatch(parsed.errors.join('; '), /hunter2/)
    }
  })
  it('is accepted with the same value (as 2 and "2" are for the script)', () => {
    const parsed = parse([{ port: 5432 }, { port: '5432' }])
    assert.ok(parsed.ok)
    if (parsed.ok) assert.deepEqual(parsed.value.database.parameters, { port: '5432' })
  })
})

describe('parseTrigger: what a 400 repeats of a request', () => {
  it('cuts a long wrong destination type and LOCAL dot-name (the manager stores the whole answer)', () => {
    const long = `X${'y'.repeat(100_000)}`
    const wrongType = parseTrigger('backup', body({ type: long }), config)
    assert.equal(wrongType.ok, false)
    if (!wrongType.ok) assert.ok(wrongType.errors.join('; ').length < 300, wrongType.errors.join('; ').slice(0, 300))
    const dotted = parseTrigger(
      'restore',
      {
        id: 'r',
        destination: { type: 'LOCAL', filenamePrefix: `.${'z'.repeat(30_000)}/`, filename: 'f' },
        restore: { host: 'h', username: 'u', password: 'p', database: 'd' },
      },
      config,
    )
    assert.equal(dotted.ok, false)
    if (!dotted.ok) assert.ok(dotted.errors.join('; ').length < 1000, `${dotted.errors.join('; ').length} characters`)
  })
})

describe('parseTrigger: unpaired surrogates', () => {
  // JSON.parse('"\ud800"') gives one: it would reach the script and the disk as U+FFFD, another
  // string than the one the agent checked (file names) and masks (secrets).
  const lone = JSON.parse('"a\\ud800b"') as string
  const trailing = JSON.parse('"x\\udfff"') as string
  it('are a 400 in any string that reaches a script or a file name, naming the field', () => {
    const cases: [string, unknown][] = [
      ['backup.password', { ...body({}), backup: { host: 'h', username: 'u', password: lone, database: 'd' } }],
      ['backup.host', { ...body({}), backup: { host: trailing, username: 'u', password: 'p', database: 'd' } }],
      ['encryption_key', { ...body({}), encryption_key: lone }],
      ['destination.authSecret', body({ authSecret: lone })],
      [
        'backup.parameters.note',
        { ...body({}), backup: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: [{ note: lone }] } },
      ],
    ]
    for (const [field, request] of cases) {
      const parsed = parseTrigger('backup', request, config)
      assert.equal(parsed.ok, false, field)
      if (!parsed.ok) assert.match(parsed.errors.join('; '), new RegExp(`${field.replaceAll('.', '\\.')} must not contain unpaired`))
    }
    const restore = parseTrigger(
      'restore',
      {
        id: 'r',
        destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's', filename: `${lone}.sql` },
        restore: { host: 'h', username: 'u', password: 'p', database: 'd' },
      },
      config,
    )
    assert.equal(restore.ok, false)
  })
  it('paired ones (emoji) are fine', () => {
    assert.equal(
      parseTrigger(
        'backup',
        { ...body({}), backup: { host: 'h😀', username: 'u', password: '😀', database: 'd', parameters: { note: '😀' } } },
        config,
      ).ok,
      true,
    )
  })
})

describe('parseTrigger: a field of the wrong type', () => {
  it('is named, without blaming the object around it ("destination must be null", "destination is required")', () => {
    const parsed = parseTrigger('backup', body({ bucket: 0 }), config)
    assert.equal(parsed.ok, false)
    if (!parsed.ok) assert.deepEqual(parsed.errors, ['destination.bucket must be string or null'])
  })
})

describe('parseTrigger: a Swift container is one segment of the storage URL', () => {
  const swift = (container_name: string) =>
    parseTrigger('backup', body({ type: 'SWIFT', authUrl: 'http://s/auth/v1.0', username: 'u', password: 'p', container_name }), config)
  it('refuses names that URL parsing would resolve out of the account', () => {
    for (const name of ['..', '.', 'a/../../other', 'a/b', '/']) {
      const parsed = swift(name)
      assert.equal(parsed.ok, false, name)
      // the oracle: what a URL makes of it must stay one segment under the account
      const url = new URL(`http://s/v1/AUTH_x/${encodeURIComponent(name).replaceAll('%2F', '/')}/obj`)
      assert.ok(
        !url.pathname.startsWith('/v1/AUTH_x/') || url.pathname.split('/').length !== 5,
        `${name} -> ${url.pathname} would have been fine`,
      )
    }
    for (const name of ['backups', 'a.b', '..x', 'x..', 'a%2fb', '%2e%2e']) assert.equal(swift(name).ok, true, name)
  })
})

describe('parseTrigger: S3 names a path-style URL would resolve differently', () => {
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ bucket: '..' }, /destination\.bucket/],
    [{ bucket: '.' }, /destination\.bucket/],
    [{ bucket: 'a/b' }, /destination\.bucket/],
    [{ filenamePrefix: '../' }, /destination\.filenamePrefix/],
    [{ filenamePrefix: 'pg/./' }, /destination\.filenamePrefix/],
    [{ filenamePrefix: 'pg/../other/' }, /destination\.filenamePrefix/],
  ]
  for (const [destination, field] of refused) {
    it(`refuses ${JSON.stringify(destination)}`, () => {
      const parsed = parseTrigger('backup', body(destination), config)
      assert.equal(parsed.ok, false)
      if (!parsed.ok) assert.match(parsed.errors.join('; '), field)
    })
  }
  it('accepts dots inside names', () => {
    assert.equal(parseTrigger('backup', body({ bucket: 'my.bucket', filenamePrefix: 'pg/v1.2/...x/' }), config).ok, true)
  })
})
