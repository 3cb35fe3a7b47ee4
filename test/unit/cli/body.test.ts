import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { triggerBody } from '../../../src/cli/body.ts'
import { CliError } from '../../../src/cli/client.ts'
import { describeJob } from '../../../src/cli/follow.ts'
import { MAX_KEY_FILE_BYTES } from '../../../src/cli/key.ts'
import { formatBytes, progressLine, transferText } from '../../../src/cli/progress.ts'

describe('CLI trigger bodies', () => {
  it('builds a LOCAL backup from flags, secrets only from the environment', async () => {
    const body = await triggerBody(
      'backup',
      { database: 'shop', prefix: 'pg/', param: ['port=5433', 'x=a=b'] },
      { OSB_DB_PASSWORD: 'pw', OSB_ENCRYPTION_KEY: 'k' },
    )
    assert.match(body.id, /^cli-\d{14}-[0-9a-f]{6}$/)
    assert.deepEqual(body.destination, { type: 'LOCAL', filenamePrefix: 'pg/' })
    assert.deepEqual(body.backup, {
      host: 'localhost',
      username: 'demo',
      password: 'pw',
      database: 'shop',
      parameters: [{ port: '5433' }, { x: 'a=b' }],
    })
    assert.equal(body.encryption_key, 'k')
  })

  it("--param adds to the body file's parameters, given as a list or as one object", async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'osb-cli-body-'))
    try {
      const file = join(dir, 'body.json')
      await writeFile(file, JSON.stringify({ backup: { parameters: { retries: 3, db_pass: 'x' } } }))
      assert.deepEqual((await triggerBody('backup', { body: file, param: ['port=1'] }, {})).backup.parameters, [
        { retries: 3 },
        { db_pass: 'x' },
        { port: '1' },
      ])
      await writeFile(file, JSON.stringify({ backup: { parameters: [{ retries: 3 }] } }))
      assert.deepEqual((await triggerBody('backup', { body: file, param: ['port=1'] }, {})).backup.parameters, [
        { retries: 3 },
        { port: '1' },
      ])
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it('a restore needs a file name; a bad --param is a usage error', async () => {
    await assert.rejects(triggerBody('restore', {}, {}), (e: Error) => e instanceof CliError && e.exitCode === 2)
    await assert.rejects(triggerBody('backup', { param: ['NOEQUALS'] }, {}), CliError)
    const restore = await triggerBody('restore', { filename: 'f.txt', id: 'r1' }, {})
    assert.equal(restore.destination.filename, 'f.txt')
    assert.equal(restore.id, 'r1')
  })
})

describe('CLI verify bodies', () => {
  it('is a restore body without the database: destination, id and key only', async () => {
    const body = await triggerBody(
      'verify',
      { filename: 'f.osb', type: 's3', bucket: 'b', endpoint: 'h:9000', 'auth-key': 'AK', id: 'v1', compression: true },
      { OSB_S3_AUTH_SECRET: 'S3-secret', OSB_ENCRYPTION_KEY: 'k', OSB_DB_PASSWORD: 'pw' },
    )
    assert.deepEqual(body, {
      id: 'v1',
      encryption_key: 'k',
      destination: { type: 'S3', filename: 'f.osb', bucket: 'b', endpoint: 'h:9000', authKey: 'AK', authSecret: 'S3-secret' },
    })
  })

  it('needs --filename unless --newest, and not both', async () => {
    await assert.rejects(
      triggerBody('verify', {}, {}),
      (e: Error) => e instanceof CliError && e.exitCode === 2 && /verify needs --filename/.test(e.message),
    )
    assert.equal((await triggerBody('verify', { newest: true }, {})).destination.filename, undefined)
    await assert.rejects(triggerBody('verify', { newest: true, filename: 'x' }, {}), /--filename or --newest, not both/)
  })

  it('builds a SWIFT destination from its flags, the password from OSB_SWIFT_PASSWORD; flags of the other type are refused', async () => {
    const body = await triggerBody(
      'verify',
      { type: 'SWIFT', filename: 'f', 'auth-url': 'http://ks/v3', container: 'c', 'swift-user': 'u', domain: 'Default', project: 'p' },
      { OSB_SWIFT_PASSWORD: 'swift-pw', OSB_S3_AUTH_SECRET: 'not-sent' },
    )
    assert.deepEqual(body.destination, {
      type: 'SWIFT',
      filename: 'f',
      authUrl: 'http://ks/v3',
      container_name: 'c',
      username: 'u',
      password: 'swift-pw',
      domain: 'Default',
      project_name: 'p',
    })
    await assert.rejects(triggerBody('verify', { type: 'SWIFT', filename: 'f', bucket: 'b' }, {}), /--bucket are for --type S3, not SWIFT/)
    await assert.rejects(triggerBody('backup', { type: 'S3', container: 'c' }, {}), /--container are for --type SWIFT, not S3/)
  })

  it('reads the key from --key-file (bounded, its last newline dropped) over OSB_ENCRYPTION_KEY', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'osb-cli-key-'))
    const env = { OSB_ENCRYPTION_KEY: 'from-env' }
    try {
      const file = join(dir, 'key')
      await writeFile(file, 'from-file-Key-42\n')
      assert.equal((await triggerBody('verify', { filename: 'f', 'key-file': file }, env)).encryption_key, 'from-file-Key-42')
      assert.equal((await triggerBody('verify', { filename: 'f' }, env)).encryption_key, 'from-env')
      await writeFile(file, Buffer.alloc(MAX_KEY_FILE_BYTES + 1, 'k'))
      await assert.rejects(
        triggerBody('verify', { filename: 'f', 'key-file': file }, env),
        (e: Error) => e instanceof CliError && /larger than/.test(e.message),
      )
      await writeFile(file, '\n')
      await assert.rejects(triggerBody('verify', { filename: 'f', 'key-file': file }, env), /is empty/)
      await assert.rejects(triggerBody('verify', { filename: 'f', 'key-file': join(dir, 'none') }, env), /cannot read --key-file .*ENOENT/)
      await assert.rejects(triggerBody('verify', { filename: 'f', 'key-file': dir }, env), /not a regular file/)
      const { symlink } = await import('node:fs/promises')
      await writeFile(file, 'from-file-Key-42')
      await symlink(file, join(dir, 'link'))
      await assert.rejects(triggerBody('verify', { filename: 'f', 'key-file': join(dir, 'link') }, env), /is a symbolic link/)
    } finally {
      await rm(dir, { recursive: true })
    }
  })
})

describe('CLI errors about the body', () => {
  it('never quote the body file or a --param value', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'osb-cli-body-'))
    const secret = 'Sup3r-Secret-Pw-xyz'
    try {
      // each a different JSON.parse message; one of them quotes an excerpt of the text
      for (const text of [
        `{"backup":{"password": ${secret}}}`,
        `{"password":"${secret}"} x`,
        `{"password":"${secret}`,
        `{"password":"${secret}\u0001"}`,
        `{"password": "${secret}", }`,
      ]) {
        const file = join(dir, 'body.json')
        await writeFile(file, text)
        await assert.rejects(triggerBody('backup', { body: file }, {}), (e: Error) => {
          assert.ok(e instanceof CliError && e.exitCode === 2)
          assert.match(e.message, /is not valid JSON/)
          for (let n = 4; n <= secret.length; n++)
            assert.ok(!e.message.includes(secret.slice(0, n)) && !e.message.includes(secret.slice(-n)), e.message)
          assert.ok(!/'S'|"S"/.test(e.message), e.message)
          return true
        })
      }
    } finally {
      await rm(dir, { recursive: true })
    }
    await assert.rejects(triggerBody('backup', { param: [`=${secret}`] }, {}), (e: Error) => !e.message.includes(secret.slice(0, 6)))
    await assert.rejects(triggerBody('backup', { param: [secret] }, {}), (e: Error) => !e.message.includes(secret.slice(0, 6)))
  })
})

describe('progress line', () => {
  it('shows the stage and how far the job is', () => {
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'backup', skip_storage: false }),
      '[########----------------] 3/6 backup',
    )
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'backup', skip_storage: true }),
      '[##########--------------] 3/5 backup',
    )
    assert.equal(progressLine('restore', { status: 'FAILED', state: 'finished' }), '[########################] FAILED')
  })
})

describe('progress line of a backup with verify_after_upload', () => {
  it('counts verify-upload only once the body shows it runs or ran', () => {
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'post-backup-unlock', skip_storage: false }),
      '[####################----] 6/6 post-backup-unlock',
    )
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'verify-upload', skip_storage: false }),
      '[#####################---] 7/7 verify-upload',
    )
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'post-backup-unlock', verification: { bytes_read: 0 } }),
      '[#################-------] 6/7 post-backup-unlock',
    )
    assert.equal(progressLine('verify', { status: 'RUNNING', state: 'verify' }), '[------------------------] 1/1 verify')
  })
})

describe('progress of a transfer or verify read', () => {
  it('shows the percentage and the bytes when the total is known, the bytes alone otherwise', () => {
    const progress = { bytes_done: 44_000_000, bytes_total: 104_857_600, bytes_per_second: 0 }
    assert.equal(
      progressLine('verify', { status: 'RUNNING', state: 'verify', progress }),
      '[------------------------] 1/1 verify 41% (44.0/104.9 MB)',
    )
    assert.equal(transferText({ ...progress, bytes_per_second: 12_500_000 }), ' 41% (44.0/104.9 MB) at 12.5 MB/s')
    assert.equal(transferText({ bytes_done: 3_500, bytes_total: null, bytes_per_second: 0 }), ' 3.5 kB')
    assert.equal(transferText({ bytes_done: 10, bytes_total: 10, bytes_per_second: 0 }), ' 100% (10/10 B)')
    // the total is the storage's word: never past 100%
    assert.equal(transferText({ bytes_done: 2e9, bytes_total: 1e9, bytes_per_second: 0 }), ' 100% (2.0/1.0 GB)')
    // the old shape (a number) and nonsense show nothing rather than NaN
    for (const odd of [0.5, null, undefined, 'x', { bytes_done: 'x' }, {}]) assert.equal(transferText(odd), '')
    assert.equal(formatBytes(999), '999 B')
    assert.equal(formatBytes(1_000), '1.0 kB')
    assert.equal(formatBytes(2.5e12), '2.5 TB')
    // a finished job shows its status, not the last progress
    assert.equal(progressLine('backup', { status: 'SUCCEEDED', state: 'finished', progress }), '[########################] SUCCEEDED')
  })
})

describe('what a verify found', () => {
  const base = {
    type: 'S3',
    filenamePrefix: 'b/',
    filename: 'x.osb',
    filesize: { size: 100 },
    start_time: 't0',
    end_time: 't1',
    execution_time_ms: 5,
  }
  it('says verified with the digest, or what failed and where', () => {
    const ok = describeJob('verify', {
      ...base,
      status: 'SUCCEEDED',
      message: 'verify successfully carried out',
      checksum: { algorithm: 'sha256', value: 'ab12' },
      checksum_verified: true,
      verification: {
        bytes_read: 100,
        format: 'osb',
        format_version: 2,
        compression: 'zstd',
        encryption: 'passphrase',
        frames_authenticated: 3,
        decoded_bytes: 500,
      },
    })
    assert.match(ok, /^verified: 100 bytes read, SHA-256 ab12 matches$/m)
    assert.match(ok, /^format: \.osb version 2, compression zstd, encryption passphrase: 3 frames authenticated, 500 bytes decoded$/m)
    const unverified = describeJob('verify', {
      ...base,
      status: 'SUCCEEDED',
      checksum_verified: false,
      verification: { bytes_read: 100, format: 'file', frames_authenticated: null },
    })
    assert.match(unverified, /no stored SHA-256 .*not verified/)
    assert.doesNotMatch(unverified, /^verified/m)
    const failed = describeJob('verify', {
      ...base,
      status: 'FAILED',
      error_message: 'checksum mismatch: x.osb …',
      verification: {
        bytes_read: 100,
        format: 'osb',
        frames_authenticated: 1,
        failure: { check: 'frame', message: 'm', offset: 2048, frame: 1 },
      },
    })
    assert.match(failed, /^error: checksum mismatch/m)
    assert.match(failed, /^failed check: frame \(at byte 2048, frame 1\)$/m)
    assert.doesNotMatch(failed, /^verified/m)
    const whole = describeJob('verify', {
      ...base,
      status: 'FAILED',
      verification: {
        bytes_read: 1,
        format: 'file',
        frames_authenticated: null,
        failure: { check: 'checksum', message: 'm', offset: null, frame: null },
      },
    })
    assert.match(whole, /^failed check: checksum$/m)
    assert.doesNotMatch(describeJob('backup', { ...base, status: 'SUCCEEDED' }), /verif|failed check/)
  })
})
