// Verify jobs (issue 17) against the real S3 server: a stored object read back and checked
// without a restore, in file mode and as streamed `.osb` objects with and without keys; objects
// damaged in storage (one flipped byte, cut short) fail with a checksum mismatch; verify after
// upload; the bounds of the trigger; cancel and an agent killed during a verify.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { startAgent, WRITE_DUMP, type Agent } from '../helpers/agent.ts'
import { DB_PASSWORD, managerBackupBody, managerId, s3Destination } from '../helpers/bodies.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { s3Lab, s3TestBucket, uniqueName } from '../helpers/storage.ts'
import { swiftLab } from '../helpers/swift.ts'

const PASSPHRASE = 'verify-passphrase-K8'

describe('verify jobs', () => {
  const { s3, bucket, target } = s3TestBucket('agent-verify')
  let agent: Agent

  before(async () => {
    await s3.createBucket(bucket)
    agent = await startAgent({
      scripts: {
        // file mode unless the request asks for the stream; size_kib KiB, half random, half zeros
        backup: [
          'if [ "$stream" = 1 ]; then out="$BACKUP_STREAM"; else out="$5.dump"; fi',
          '{ head -c "$(( ${size_kib:-64} * 512 ))" /dev/urandom; head -c "$(( ${size_kib:-64} * 512 ))" /dev/zero; } > "$out"',
        ].join('\n'),
      },
    })
  })
  after(async () => {
    agent.assertNoSecrets([DB_PASSWORD, PASSPHRASE, s3.secretKey])
    await agent.stop()
  })

  async function backup(parameters: Record<string, unknown>, encryptionKey: string | null = null, via = agent) {
    const id = managerId()
    const body = managerBackupBody(id, s3Destination(target), { parameters })
    body.compression = true
    body.encryption_key = encryptionKey
    assert.equal((await via.request('POST', '/backup', body)).status, 201)
    const done = await via.waitFor('backup', id, 120_000)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    return done
  }

  const verifyBody = (filename: string, encryptionKey?: string | null, extra: Record<string, unknown> = {}) => ({
    id: managerId(),
    ...(encryptionKey !== undefined ? { encryption_key: encryptionKey } : {}),
    destination: s3Destination(target, { filename, ...extra }),
  })

  async function verify(filename: string, encryptionKey?: string | null, via = agent) {
    const body = verifyBody(filename, encryptionKey)
    const reply = await via.request('POST', '/verify', body)
    assert.equal(reply.status, 201, reply.text)
    return via.waitFor('verify', body.id, 120_000)
  }

  /** Replaces the stored object with `change(bytes)`, keeping its metadata (the stored digest). */
  async function damage(filename: string, change: (bytes: Buffer) => Buffer) {
    const key = `backups/${filename}`
    const head = await s3.headObject(bucket, key)
    const bytes = await s3.getObject(bucket, key)
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: change(bytes), Metadata: head.Metadata }))
  }
  const flipByteAt = (offset: (length: number) => number) => (bytes: Buffer) => {
    const copy = Buffer.from(bytes)
    const at = offset(copy.length)
    copy[at] = (copy[at] as number) ^ 0x01
    return copy
  }

  it('verifies a file-mode backup: reads it to the end and matches the digest the upload stored', async () => {
    const done = await backup({ size_kib: 3 * 1024 })
    const verified = await verify(done.filename)
    assert.equal(verified.status, 'SUCCEEDED', verified.error_message)
    assert.equal(verified.message, 'verify successfully carried out')
    assert.equal(verified.state, 'finished')
    assert.equal(verified.checksum_verified, true)
    assert.deepEqual(verified.checksum, done.checksum)
    assert.equal(verified.filename, done.filename)
    assert.equal(verified.filesize.size, done.filesize.size)
    assert.deepEqual(verified.verification, { bytes_read: done.filesize.size, format: 'file', frames_authenticated: null })
    assert.equal(verified.progress, undefined, 'no progress once finished')
    // nothing of the object was written: the agent's directories hold no verify folder
    assert.equal(verified.backup_log, undefined)
  })

  it('fails a file-mode object with one flipped byte, or cut short, with a checksum mismatch', async () => {
    for (const change of [flipByteAt((n) => Math.floor(n / 2)), (b: Buffer) => b.subarray(0, b.length - 1000)]) {
      const done = await backup({ size_kib: 256 })
      await damage(done.filename, change)
      const verified = await verify(done.filename)
      assert.equal(verified.status, 'FAILED')
      assert.equal(verified.message, 'verify failed')
      assert.match(verified.error_message, /checksum mismatch/)
      assert.equal(verified.checksum_verified, false)
      assert.equal(verified.verification.failure.check, 'checksum')
      assert.equal(verified.verification.failure.offset, null, 'a digest over the whole object cannot say where')
    }
  })

  it('fails an object replaced without its stored digest: the agent checks it against its own record of the backup', async () => {
    const done = await backup({ size_kib: 64 })
    const key = `backups/${done.filename}`
    const bytes = await s3.getObject(bucket, key)
    // re-uploaded without metadata (a hand copy, another tool): nothing stored says what it should be
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: flipByteAt(() => 100)(bytes) }))
    const verified = await verify(done.filename)
    assert.equal(verified.status, 'FAILED')
    assert.match(verified.error_message, /checksum mismatch: .* \(the agent's record of backup [0-9a-f]+\)/)
    // the same bytes back, still without metadata: they match the record, so they verify
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }))
    const restored = await verify(done.filename)
    assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
    assert.equal(restored.checksum_verified, true)
    // another agent, without the record: unverified, not failed
    const other = await startAgent()
    try {
      const unverified = await verify(done.filename, undefined, other)
      assert.equal(unverified.status, 'SUCCEEDED', unverified.error_message)
      assert.equal(unverified.checksum_verified, false)
    } finally {
      await other.stop()
    }
  })

  it('verifies an encrypted streamed backup with the passphrase: every frame authenticated, decoded to its end', async () => {
    const done = await backup({ stream: 1, size_kib: 3 * 1024 }, PASSPHRASE)
    assert.match(done.filename, /\.osb$/)
    const verified = await verify(done.filename, PASSPHRASE)
    assert.equal(verified.status, 'SUCCEEDED', verified.error_message)
    assert.equal(verified.checksum_verified, true)
    assert.deepEqual(verified.checksum, done.checksum)
    const v = verified.verification
    assert.equal(v.format, 'osb')
    assert.equal(v.format_version, 2)
    assert.equal(v.encryption, 'passphrase')
    assert.equal(v.compression, 'zstd')
    assert.equal(v.bytes_read, done.filesize.size)
    assert.ok(v.frames_authenticated >= 1, JSON.stringify(v))
    assert.equal(v.decoded_bytes, 3 * 1024 * 1024, 'the dump decoded to its full size')
    assert.equal(v.failure, undefined)
  })

  it('without a key checks the format and the digest of an encrypted stream, and says the frames were not opened', async () => {
    const done = await backup({ stream: 1 }, PASSPHRASE)
    for (const key of [undefined, null, '', 'none']) {
      const verified = await verify(done.filename, key)
      assert.equal(verified.status, 'SUCCEEDED', verified.error_message)
      assert.equal(verified.checksum_verified, true)
      assert.equal(verified.verification.frames_authenticated, null)
      assert.equal(verified.verification.encryption, 'passphrase')
      assert.equal(verified.verification.decoded_bytes, undefined)
    }
  })

  it('with the wrong key fails "wrong key", and tells it from damage: the digest matched', async () => {
    const done = await backup({ stream: 1 }, PASSPHRASE)
    const verified = await verify(done.filename, 'not-the-passphrase')
    assert.equal(verified.status, 'FAILED')
    assert.match(verified.error_message, /^wrong key/)
    assert.doesNotMatch(verified.error_message, /checksum mismatch/)
    assert.equal(verified.checksum_verified, true)
    assert.deepEqual(
      { ...verified.verification.failure, message: '' },
      { check: 'key', message: '', offset: verified.verification.failure.offset, frame: 0 },
    )
  })

  it('with a key pair: the private key opens every frame, another private key is a wrong key', async () => {
    const pair = generateKeyPairSync('x25519')
    const other = generateKeyPairSync('x25519')
    const done = await backup({ stream: 1 }, String(pair.publicKey.export({ type: 'spki', format: 'pem' })))
    const right = await verify(done.filename, String(pair.privateKey.export({ type: 'pkcs8', format: 'pem' })))
    assert.equal(right.status, 'SUCCEEDED', right.error_message)
    assert.equal(right.verification.encryption, 'x25519')
    assert.ok(right.verification.frames_authenticated >= 1)
    const wrong = await verify(done.filename, String(other.privateKey.export({ type: 'pkcs8', format: 'pem' })))
    assert.equal(wrong.status, 'FAILED')
    assert.match(wrong.error_message, /wrong key/)
    assert.equal(wrong.verification.failure.check, 'key')
  })

  it('fails an encrypted stream with one flipped byte: checksum mismatch, and the frame and offset where it failed', async () => {
    const done = await backup({ stream: 1, size_kib: 3 * 1024 }, PASSPHRASE)
    // in the second frame's ciphertext: the header is under 1 KiB, a frame is 1 MiB + 16
    const at = 1024 * 1024 + 16 + 5000
    await damage(
      done.filename,
      flipByteAt(() => at),
    )
    const verified = await verify(done.filename, PASSPHRASE)
    assert.equal(verified.status, 'FAILED')
    assert.match(verified.error_message, /checksum mismatch/)
    assert.match(verified.error_message, /frame 1/)
    const failure = verified.verification.failure
    assert.equal(failure.check, 'checksum')
    assert.equal(failure.frame, 1)
    assert.ok(failure.offset <= at && at < failure.offset + 1024 * 1024 + 16, JSON.stringify(failure))
    assert.equal(verified.verification.frames_authenticated, 1)
    assert.equal(verified.verification.bytes_read, done.filesize.size, 'read to the end for the digest')
  })

  it('fails a streamed object cut short, with or without the key, with a checksum mismatch', async () => {
    const done = await backup({ stream: 1, size_kib: 2 * 1024 }, PASSPHRASE)
    await damage(done.filename, (b) => b.subarray(0, b.length - 100_000))
    for (const key of [PASSPHRASE, undefined]) {
      const verified = await verify(done.filename, key)
      assert.equal(verified.status, 'FAILED')
      assert.match(verified.error_message, /checksum mismatch/)
      assert.equal(verified.verification.failure.check, 'checksum')
    }
  })

  it('fails an object that is not a stream although its name ends in .osb: format, at offset 0', async () => {
    const filename = `${managerId()}.osb`
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `backups/${filename}`, Body: Buffer.alloc(4096, 7) }))
    const verified = await verify(filename)
    assert.equal(verified.status, 'FAILED')
    assert.match(verified.error_message, /OSB1/)
    assert.deepEqual(
      { check: verified.verification.failure.check, offset: verified.verification.failure.offset },
      { check: 'format', offset: 0 },
    )
  })

  it('passes an object without a stored digest as unverified (checksum_verified false), fails it with require_checksum', async () => {
    const filename = `${managerId()}.sql`
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: `backups/${filename}`, Body: 'an old agent wrote me\n' }))
    const verified = await verify(filename)
    assert.equal(verified.status, 'SUCCEEDED', verified.error_message)
    assert.equal(verified.checksum_verified, false)
    assert.equal(verified.checksum, undefined)
    assert.equal(verified.verification.bytes_read, 22)
    const strict = await startAgent({ env: { require_checksum: 'true' } })
    try {
      const refused = await verify(filename, undefined, strict)
      assert.equal(refused.status, 'FAILED')
      assert.match(refused.error_message, /no stored checksum and require_checksum is true/)
    } finally {
      await strict.stop()
    }
  })

  it('fails a verify of an object that does not exist, naming it', async () => {
    const verified = await verify('no-such-object.sql')
    assert.equal(verified.status, 'FAILED')
    assert.match(verified.error_message, /no-such-object\.sql/)
  })

  it('refuses bodies a verify cannot run: no filename, skipStorage, a bad name; nothing registered', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [verifyBody(''), /destination\.filename is required for a verify/],
      [verifyBody('x.sql', undefined, { skipStorage: true }), /skipStorage must not be true for a verify/],
      [verifyBody('../x.sql'), /destination\.filename/],
      [{ id: managerId() }, /destination is required/],
    ]
    for (const [body, message] of cases) {
      const reply = await agent.request('POST', '/verify', body)
      assert.equal(reply.status, 400, reply.text)
      assert.equal(reply.json().status, 'FAILED')
      assert.match(reply.json().error_message, message)
      assert.equal((await agent.request('GET', `/verify/${body.id}`)).status, 404)
    }
    assert.equal((await agent.request('PUT', '/verify', verifyBody('x.sql'))).status, 405)
  })

  it('lists verify jobs and answers 409 for a known id', async () => {
    const done = await backup({})
    const body = verifyBody(done.filename)
    assert.equal((await agent.request('POST', '/verify', body)).status, 201)
    await agent.waitFor('verify', body.id)
    const again = await agent.request('POST', '/verify', body)
    assert.equal(again.status, 409)
    assert.equal(again.json().message, 'verify successfully carried out')
    const listing = await agent.request('GET', '/verify')
    assert.ok(listing.json().jobs.some((j: { id: string }) => j.id === body.id))
    assert.equal((await agent.request('GET', `/backup/${body.id}`)).status, 404, 'kinds are apart')
  })
})

describe('verify jobs that wait on storage', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-verify-stall')

  it('are counted against max_job_number, cancelled, and end FAILED when the agent is killed during one', async () => {
    await s3.createBucket(bucket)
    const proxy = await startFaultyProxy(Number(new URL(s3.endpoint).port), { kind: 'stall' })
    let agent = await startAgent({ env: { max_job_number: '1', storage_retries: '0' } })
    try {
      const body = (id: string) => ({
        id,
        destination: s3Destination(
          { hostPort: proxy.hostPort, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket },
          { filename: 'x.sql' },
        ),
      })
      const first = managerId()
      assert.equal((await agent.request('POST', '/verify', body(first))).status, 201)
      assert.equal((await agent.request('GET', `/verify/${first}`)).json().state, 'verify')
      const full = await agent.request('POST', '/verify', body(managerId()))
      assert.equal(full.status, 429, full.text)
      assert.equal((await agent.request('POST', `/verify/${first}/cancel`)).status, 202)
      const cancelled = await agent.waitFor('verify', first)
      assert.equal(cancelled.status, 'FAILED')
      assert.match(cancelled.error_message, /cancel/)

      const second = managerId()
      assert.equal((await agent.request('POST', '/verify', body(second))).status, 201)
      await agent.kill('SIGKILL')
      agent = await startAgent(agent.restartOptions())
      const recovered = (await agent.request('GET', `/verify/${second}`)).json()
      assert.equal(recovered.status, 'FAILED')
      assert.match(recovered.error_message, /interrupted by agent restart during verify/)
      assert.equal((await agent.request('DELETE', '/verify', { id: second })).status, 200, 'nothing owed: it can be forgotten')
    } finally {
      await agent.stop()
      await proxy.close()
    }
  })
})

describe('verify after upload', () => {
  const { s3, bucket, target } = s3TestBucket('agent-verify-upload')

  it('reads back what a backup uploaded, after the unlock, before it reports SUCCEEDED', async () => {
    await s3.createBucket(bucket)
    const agent = await startAgent({ env: { verify_after_upload: 'true' }, scripts: { backup: WRITE_DUMP } })
    try {
      const id = managerId()
      assert.equal(
        (await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { parameters: { job: id } }))).status,
        201,
      )
      const done = await agent.waitFor('backup', id)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      assert.equal(done.checksum_verified, true)
      assert.equal(done.verification.format, 'file')
      assert.equal(done.verification.bytes_read, done.filesize.size)
      const stages = await agent.stagesRun(id)
      assert.equal(stages.at(-1), 'post-backup-unlock', 'the read-back runs no script, after the unlock')
      const metrics = (await agent.request('GET', '/metrics')).text
      assert.match(metrics, /stage="verify-upload",outcome="ok"/)
    } finally {
      await agent.stop()
    }
  })
})

describe('verify on Swift and LOCAL', () => {
  /** Backs up to `destination` on `agent`; then `verifyIt()` verifies that backup's object there. */
  async function backupToVerify(agent: Agent, destination: Record<string, unknown>) {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, destination))).status, 201)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const verifyIt = async () => {
      const body = { id: managerId(), destination: { ...destination, filename: done.filename } }
      assert.equal((await agent.request('POST', '/verify', body)).status, 201)
      return agent.waitFor('verify', body.id)
    }
    return { done, verifyIt }
  }

  it('Swift: a clean object verifies; one replaced with a flipped byte (its digest kept) fails with a checksum mismatch', async () => {
    const lab = swiftLab()
    const container = uniqueName('agent-verify')
    const account = await lab.account('v3')
    await account.createContainer(container)
    const agent = await startAgent({ scripts: { backup: 'head -c 300000 /dev/urandom > "$5.dump"' } })
    try {
      const { done, verifyIt } = await backupToVerify(agent, lab.destination('v3', container))
      const clean = await verifyIt()
      assert.equal(clean.status, 'SUCCEEDED', clean.error_message)
      assert.equal(clean.checksum_verified, true)
      assert.deepEqual(clean.checksum, done.checksum)
      const bytes = await account.get(container, done.filename)
      bytes[1234] = (bytes[1234] as number) ^ 0x80
      const sha256 = (await account.head(container, done.filename)).headers.get('x-object-meta-sha256') as string
      assert.equal(sha256, done.checksum.value)
      await account.put(container, done.filename, bytes, { 'x-object-meta-sha256': sha256 })
      const damaged = await verifyIt()
      assert.equal(damaged.status, 'FAILED')
      assert.match(damaged.error_message, /checksum mismatch/)
    } finally {
      await agent.stop()
      await account.removeContainer(container)
    }
  })

  it('Swift: a large object (SLO) with a damaged segment fails with a checksum mismatch (Swift refuses it: 409)', async () => {
    const lab = swiftLab()
    const container = uniqueName('agent-verify-slo')
    const account = await lab.account('v3')
    await account.createContainer(container)
    const agent = await startAgent({
      env: { swift_segment_bytes: String(1024 * 1024), swift_segment_threshold_bytes: '0' },
      scripts: { backup: 'head -c 3000000 /dev/urandom > "$5.dump"' },
    })
    try {
      const { verifyIt } = await backupToVerify(agent, lab.destination('v3', container))
      const segments = await account.list(`${container}_segments`)
      assert.equal(segments.length, 3, 'a large object of three segments')
      const clean = await verifyIt()
      assert.equal(clean.status, 'SUCCEEDED', clean.error_message)
      assert.equal(clean.verification.bytes_read, 3_000_000)
      for (const segment of [segments[0], segments[2]] as string[]) {
        const original = await account.get(`${container}_segments`, segment)
        const bytes = Buffer.from(original)
        bytes[100] = (bytes[100] as number) ^ 1
        await account.put(`${container}_segments`, segment, bytes)
        const damaged = await verifyIt()
        assert.equal(damaged.status, 'FAILED')
        assert.match(damaged.error_message, /checksum mismatch/)
        assert.equal(damaged.verification.failure.check, 'checksum')
        await account.put(`${container}_segments`, segment, original)
      }
    } finally {
      await agent.stop()
      await account.removeContainer(`${container}_segments`)
      await account.removeContainer(container)
    }
  })

  it('LOCAL: a clean object verifies; the file changed in place fails with a checksum mismatch', async () => {
    const agent = await startAgent({ env: { local_storage_root: 'objects' }, scripts: { backup: WRITE_DUMP } })
    try {
      const { done, verifyIt } = await backupToVerify(agent, { type: 'LOCAL', filenamePrefix: 'pg/' })
      assert.equal((await verifyIt()).status, 'SUCCEEDED')
      const path = join(agent.root, 'objects', 'pg', done.filename)
      writeFileSync(path, readFileSync(path, 'utf8').replace('dump', 'dumb'))
      const damaged = await verifyIt()
      assert.equal(damaged.status, 'FAILED')
      assert.match(damaged.error_message, /checksum mismatch/)
    } finally {
      await agent.stop()
    }
  })
})
