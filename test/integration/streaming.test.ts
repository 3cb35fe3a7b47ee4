// Streaming mode (BACKUP_STREAM / RESTORE_STREAM) with agent-side compression, encryption and
// checksums, against the real S3 server.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { DB_PASSWORD, managerBackupBody, managerId, managerRestoreBody, s3Destination } from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'
import { swiftLab, type SwiftAccount } from '../helpers/swift.ts'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const PASSPHRASE = 'stream-passphrase-V5'

describe('streaming mode', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-stream')
  const target = s3.target(bucket)
  let agent: Agent
  let streamingRestore: Agent

  before(async () => {
    await s3.createBucket(bucket)
    const scripts = {
      // writes size_kib KiB of data (half random, half zeros: compressible) to the stream and a copy to $original
      backup: [
        '{ head -c "$(( ${size_kib:-64} * 512 ))" /dev/urandom; head -c "$(( ${size_kib:-64} * 512 ))" /dev/zero; } | tee "$original" > "$BACKUP_STREAM"',
        'if [ "$fail_after_stream" = 1 ]; then echo "dump failed halfway" >&2; exit 7; fi',
      ].join('\n'),
      // file contract: the decoded dump is "$5"
      restore: 'sha256sum "$5" | cut -c1-64',
    }
    agent = await startAgent({ scripts })
    streamingRestore = await startAgent({
      env: { directory_backup: agent.backupDir },
      scripts: { ...scripts, restore: 'sleep "${delay:-0}"; sha256sum < "$RESTORE_STREAM" | cut -c1-64' },
    })
  })
  after(async () => {
    for (const a of [agent, streamingRestore]) {
      a.assertNoSecrets([DB_PASSWORD, PASSPHRASE, s3.secretKey])
      await a.stop()
    }
  })

  async function streamedBackup(encryptionKey: string | null, parameters: Record<string, unknown>) {
    const id = managerId()
    const original = join(agent.root, `original-${id}`)
    const body = managerBackupBody(id, s3Destination(target), { parameters: { original, ...parameters } })
    body.compression = true
    body.encryption_key = encryptionKey
    assert.equal((await agent.request('POST', '/backup', body)).status, 201)
    return { id, original, done: await agent.waitFor('backup', id, 120_000) }
  }

  async function restore(via: Agent, filename: string, encryptionKey: string | null, parameters: Record<string, unknown> = {}) {
    const id = managerId()
    const body = managerRestoreBody(id, s3Destination(target, { filename }), { parameters })
    body.encryption_key = encryptionKey
    await via.request('PUT', '/restore', body)
    return via.waitFor('restore', id, 120_000)
  }

  it('uploads what the script writes to BACKUP_STREAM as a compressed, encrypted .osb object, no temp file', async () => {
    const { done, original } = await streamedBackup(PASSPHRASE, { size_kib: 48 * 1024 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.match(done.filename, /^\d{4}_\d\d_\d\d_\d\d_\d\d_10\.0\.0\.12_orders\.osb$/)
    const data = readFileSync(original)
    const head = await s3.headObject(bucket, `backups/${done.filename}`)
    assert.equal(head.ContentLength, done.filesize.size)
    assert.ok(done.filesize.size < data.length * 0.75, 'the zero half compressed')
    // the digest travels in the object's trailer: S3 metadata says where, and holds no copy of it
    // (storing it would have taken a server-side copy of the whole object)
    assert.equal(head.Metadata?.sha256, undefined)
    assert.equal(head.Metadata?.['sha256-location'], 'trailer')
    assert.equal(head.Metadata?.format, 'osb2')
    assert.equal(head.Metadata?.encryption, 'passphrase')
    assert.equal(head.Metadata?.compression, 'zstd')
    const stored = await s3.getObject(bucket, `backups/${done.filename}`)
    assert.equal(stored.subarray(stored.length - 32).toString('hex'), done.checksum.value)
    assert.equal(sha256(stored.subarray(0, stored.length - 32)), done.checksum.value)
    assert.ok(!stored.includes(data.subarray(0, 64)), 'the object is not plaintext')

    const viaFile = await restore(agent, done.filename, PASSPHRASE)
    assert.equal(viaFile.status, 'SUCCEEDED', viaFile.error_message)
    assert.equal(viaFile.checksum_verified, true)
    assert.deepEqual(viaFile.checksum, done.checksum)
    assert.equal(viaFile.restore_log.trim(), sha256(data))

    const viaStream = await restore(streamingRestore, done.filename, PASSPHRASE)
    assert.equal(viaStream.status, 'SUCCEEDED', viaStream.error_message)
    assert.equal(viaStream.restore_log.trim(), sha256(data))
    assert.equal(viaStream.checksum_verified, true)
    assert.deepEqual(viaStream.checksum, done.checksum)
  })

  it('require_checksum is satisfied by a verified trailer (no sha256 metadata on S3)', async () => {
    const strict = await startAgent({
      env: { directory_backup: agent.backupDir, require_checksum: 'true' },
      scripts: { restore: 'sha256sum "$5" | cut -c1-64' },
    })
    try {
      const { done, original } = await streamedBackup(null, { size_kib: 64 })
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      const restored = await restore(strict, done.filename, null)
      assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
      assert.equal(restored.checksum_verified, true)
      assert.equal(restored.restore_log.trim(), sha256(readFileSync(original)))
    } finally {
      await strict.stop()
    }
  })

  it('an operator decodes a streamed backup downloaded with awscli using `osb-backup-agent decrypt`', async () => {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const { done, original } = await streamedBackup(publicPem, { size_kib: 3 * 1024 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const downloaded = join(agent.root, 'by-hand.osb')
    const env: Record<string, string | undefined> = {
      ...process.env,
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    }
    delete env.AWS_CA_BUNDLE
    execFileSync(
      '/usr/bin/aws',
      ['--endpoint-url', s3.endpoint, 's3', 'cp', '--no-progress', `s3://${bucket}/backups/${done.filename}`, downloaded],
      { env, stdio: 'pipe' },
    )
    const keyFile = join(agent.root, 'private.pem')
    writeFileSync(keyFile, privatePem, { mode: 0o600 })
    const cli = new URL('../../bin/osb-backup-agent', import.meta.url).pathname
    const decoded = execFileSync(cli, ['decrypt', downloaded, '--key-file', keyFile], { maxBuffer: 64 * 1024 * 1024 })
    assert.equal(sha256(decoded), sha256(readFileSync(original)))
    // a changed trailer: the CLI fails loudly and leaves no output file behind
    const tampered = readFileSync(downloaded)
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1
    writeFileSync(downloaded, tampered)
    const out = join(agent.root, 'by-hand.dump')
    const refused = spawnSync(cli, ['decrypt', downloaded, '--key-file', keyFile, '--out', out])
    assert.equal(refused.status, 1)
    assert.match(refused.stderr.toString(), /decrypt failed: checksum mismatch: .*trailer/)
    assert.equal(existsSync(out), false)
    // a wrong key: a clear message and exit code 1
    const wrong = spawnSync(cli, ['decrypt', downloaded], { env: { ...process.env, OSB_ENCRYPTION_KEY: 'not the key' } })
    assert.equal(wrong.status, 1)
    assert.match(wrong.stderr.toString(), /decrypt failed: .*private key/)
  })

  it('encrypts for an X25519 public key and restores with the private key; the wrong key fails cleanly', async () => {
    const pair = generateKeyPairSync('x25519')
    const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
    const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const { done, original } = await streamedBackup(publicPem, { size_kib: 256 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const restored = await restore(streamingRestore, done.filename, privatePem)
    assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
    assert.equal(restored.restore_log.trim(), sha256(readFileSync(original)))

    const other = generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const wrong = await restore(agent, done.filename, other)
    assert.equal(wrong.status, 'FAILED')
    assert.match(wrong.error_message, /wrong key/)
    const missing = await restore(agent, done.filename, null)
    assert.equal(missing.status, 'FAILED')
    assert.match(missing.error_message, /encrypted but the restore request has no encryption_key/)
  })

  it('streams a small backup to a restore script that opens RESTORE_STREAM late', async () => {
    // the whole stream fits into the pipe's buffer: it must not be written (and the pipe closed)
    // before the script has opened it
    const { done, original } = await streamedBackup(null, { size_kib: 2 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const restored = await restore(streamingRestore, done.filename, null, { delay: 1 })
    assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
    assert.equal(restored.restore_log.trim(), sha256(readFileSync(original)))
  })

  it('refuses a private key for a backup', async () => {
    const privatePem = generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const { done } = await streamedBackup(privatePem, {})
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /is a private key/)
  })

  it('a streaming script that fails halfway leaves no object and no multipart upload behind', async () => {
    const before = await s3.keys(bucket)
    const { done } = await streamedBackup(null, { size_kib: 48 * 1024, fail_after_stream: 1 })
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /backup script failed with exit code 7/)
    assert.deepEqual(await s3.keys(bucket), before)
    const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    assert.deepEqual(uploads.Uploads ?? [], [])
  })

  it('a tampered streamed object is refused: checksum mismatch (file) or failed authentication (stream)', async () => {
    const { done } = await streamedBackup(PASSPHRASE, { size_kib: 128 })
    const key = `backups/${done.filename}`
    const stored = await s3.getObject(bucket, key)
    stored[stored.length - 40] = (stored[stored.length - 40] as number) ^ 0xff
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: stored, Metadata: { 'sha256-location': 'trailer' } }))
    const viaFile = await restore(agent, done.filename, PASSPHRASE)
    assert.equal(viaFile.status, 'FAILED')
    assert.match(viaFile.error_message, /^checksum mismatch/)
    const viaStream = await restore(streamingRestore, done.filename, PASSPHRASE)
    assert.equal(viaStream.status, 'FAILED')
    assert.match(viaStream.error_message, /failed authentication|checksum mismatch/)
  })

  it('an unencrypted streamed object with a changed byte is refused both ways, also when its trailer is rewritten to match and the metadata says otherwise', async () => {
    const { done } = await streamedBackup(null, { size_kib: 256 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const key = `backups/${done.filename}`
    const stored = await s3.getObject(bucket, key)
    const changed = Buffer.from(stored)
    changed[changed.length - 1000] = (changed[changed.length - 1000] as number) ^ 1
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: changed, Metadata: { 'sha256-location': 'trailer' } }))
    for (const via of [agent, streamingRestore]) {
      const refused = await restore(via, done.filename, null)
      assert.equal(refused.status, 'FAILED')
      assert.match(refused.error_message, /^checksum mismatch: .*trailer/)
    }
    // cut short inside the trailer
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: stored.subarray(0, stored.length - 7),
        Metadata: { 'sha256-location': 'trailer' },
      }),
    )
    for (const via of [agent, streamingRestore]) {
      const refused = await restore(via, done.filename, null)
      assert.equal(refused.status, 'FAILED')
      assert.match(refused.error_message, /^checksum mismatch/)
    }
    // a consistent trailer over the changed bytes, but Swift/LOCAL-style metadata with the original digest
    const body = changed.subarray(0, changed.length - 32)
    const resealed = Buffer.concat([body, createHash('sha256').update(body).digest()])
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: resealed,
        Metadata: { 'sha256-location': 'trailer', sha256: done.checksum.value },
      }),
    )
    for (const via of [agent, streamingRestore]) {
      const refused = await restore(via, done.filename, null)
      assert.equal(refused.status, 'FAILED')
      assert.match(refused.error_message, /^checksum mismatch: .*stored metadata/)
    }
  })
})

describe('streaming mode to Swift', () => {
  const lab = swiftLab()
  const container = uniqueName('agent-stream')
  let account: SwiftAccount
  let agent: Agent

  before(async () => {
    account = await lab.account('v3')
    await account.createContainer(container)
    agent = await startAgent({
      scripts: {
        backup: [
          '{ head -c "$(( ${size_kib:-64} * 1024 ))" /dev/urandom; } | tee "$original" > "$BACKUP_STREAM"',
          'if [ "$fail_after_stream" = 1 ]; then exit 7; fi',
        ].join('\n'),
        restore: 'sha256sum < "$RESTORE_STREAM" | cut -c1-64',
      },
    })
  })
  after(async () => {
    agent.assertNoSecrets([DB_PASSWORD, PASSPHRASE, lab.env.KEYSTONE_PASSWORD as string])
    await agent.stop()
    await account.removeContainer(`${container}_segments`).catch(() => {})
    await account.removeContainer(container).catch(() => {})
  })

  async function backup(parameters: Record<string, unknown>) {
    const id = managerId()
    const original = join(agent.root, `original-${id}`)
    const body = managerBackupBody(id, lab.destination('v3', container), { parameters: { original, ...parameters } })
    body.compression = true
    body.encryption_key = PASSPHRASE
    await agent.request('POST', '/backup', body)
    return { original, done: await agent.waitFor('backup', id, 120_000) }
  }

  it('streams a large backup into segments with its checksum as object metadata, and streams it back', async () => {
    const { done, original } = await backup({ size_kib: 40 * 1024 })
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.match(done.filename, /\.osb$/)
    const head = await account.head(container, done.filename)
    assert.equal(head.headers.get('x-static-large-object'), 'True')
    // Swift stores the digest as metadata too (a cheap POST): the same value as the trailer
    assert.equal(head.headers.get('x-object-meta-sha256'), done.checksum.value)
    assert.equal(head.headers.get('x-object-meta-sha256-location'), 'trailer')
    assert.equal(head.headers.get('x-object-meta-format'), 'osb2')
    const stored = await account.get(container, done.filename)
    assert.equal(stored.subarray(stored.length - 32).toString('hex'), done.checksum.value)
    assert.equal(sha256(stored.subarray(0, stored.length - 32)), done.checksum.value)

    const id = managerId()
    const body = managerRestoreBody(id, lab.destination('v3', container, { filename: done.filename }))
    body.encryption_key = PASSPHRASE
    await agent.request('PUT', '/restore', body)
    const restored = await agent.waitFor('restore', id, 120_000)
    assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
    assert.equal(restored.restore_log.trim(), sha256(readFileSync(original)))
    assert.equal(restored.checksum_verified, true)
    assert.deepEqual(restored.checksum, done.checksum)
  })

  it('a streaming script that fails halfway leaves no object and no segments', async () => {
    const objects = await account.list(container)
    const segments = await account.list(`${container}_segments`)
    const { done } = await backup({ size_kib: 40 * 1024, fail_after_stream: 1 })
    assert.equal(done.status, 'FAILED')
    assert.deepEqual(await account.list(container), objects)
    assert.deepEqual(await account.list(`${container}_segments`), segments)
  })
})
