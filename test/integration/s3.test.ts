// Backups to and restores from a real S3 server (Swift's s3api on 127.0.0.1).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody, s3Destination } from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('S3 storage', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-s3')
  const target = s3.target(bucket)
  let agent: Agent

  before(async () => {
    await s3.createBucket(bucket)
    agent = await startAgent({
      scripts: {
        // SIZE_MIB of random bytes: above the 8 MiB part size, the upload is multipart
        backup: 'head -c "$(( ${size_mib:-1} * 1048576 ))" /dev/urandom > "$5.dump"',
        restore: 'sha256sum "$5" | cut -c1-64',
      },
    })
  })
  // stop() also audits the agent's output for every secret these tests sent
  after(() => agent.stop())

  it('backs up to filenamePrefix + filename and restores byte-exact (multipart)', async () => {
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { parameters: [{ size_mib: 20 }] }))).status,
      201,
    )
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    assert.equal(backup.filenamePrefix, 'backups/')
    assert.equal(backup.bucket, bucket)
    assert.equal(backup.endpoint, s3.hostPort)
    assert.equal(backup.filesize.size, 20 * 1048576)
    assert.match(backup.filename, /^\d{4}_\d\d_\d\d_\d\d_\d\d_10\.0\.0\.12_orders\.dump$/)

    const local = await readFile(join(agent.backupDir, id, backup.filename))
    const head = await s3.headObject(bucket, `backups/${backup.filename}`)
    assert.equal(head.ContentLength, local.length)
    assert.match(head.ETag ?? '', /-3"$/, 'a 20 MiB file goes up in three parts')
    const stored = await s3.getObject(bucket, `backups/${backup.filename}`)
    assert.equal(sha256(stored), sha256(local))
    // the whole-object digest is reported and stored with the (multipart) object
    assert.deepEqual(backup.checksum, { algorithm: 'sha256', value: sha256(local) })
    assert.equal(head.Metadata?.sha256, sha256(local))

    const rid = managerId()
    const restoreBody = managerRestoreBody(rid, s3Destination(target, { filename: backup.filename }))
    assert.equal((await agent.request('PUT', '/restore', restoreBody)).status, 201)
    const restore = await agent.waitFor('restore', rid)
    assert.equal(restore.status, 'SUCCEEDED', restore.error_message)
    assert.equal(restore.restore_log.trim(), sha256(local))
    assert.equal(restore.checksum_verified, true)
    assert.deepEqual(restore.checksum, { algorithm: 'sha256', value: sha256(local) })
    assert.equal(restore.filesize.size, local.length)
    const restored = await readFile(join(agent.restoreDir, rid, backup.filename))
    assert.equal(sha256(restored), sha256(local))
  })

  it('accepts an endpoint with a scheme and no SSL flag, and an empty prefix', async () => {
    const id = managerId()
    const destination = s3Destination(target, { endpoint: s3.endpoint, useSSL: null, filenamePrefix: null, region: 'us-east-1' })
    await agent.request('POST', '/backup', managerBackupBody(id, destination))
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.equal(done.filenamePrefix, '')
    assert.equal(done.useSSL, false)
    assert.ok((await s3.keys(bucket)).includes(done.filename))
  })

  it('fails clearly when the bucket does not exist, and still cleans up and unlocks', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, s3Destination({ ...target, bucket: 'no-such-bucket-here' }), { parameters: { job: id } }),
    )
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /bucket no-such-bucket-here at http:\/\/127\.0\.0\.1:\d+ does not exist/)
    assert.deepEqual(await agent.stagesRun(id), ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'])
  })

  it('fails clearly on wrong credentials without revealing the secret', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, s3Destination({ ...target, secretKey: 'wrong-secret-Z9' })))
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /refused the credentials of access key test:tester/)
    assert.ok(!JSON.stringify(done).includes('wrong-secret-Z9'))
  })

  it('fails clearly, without hanging or crashing, when the endpoint is unreachable (host:port)', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, s3Destination({ ...target, hostPort: '127.0.0.1:1' })))
    const done = await agent.waitFor('backup', id, 60_000)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /cannot reach the S3 endpoint http:\/\/127\.0\.0\.1:1/)
    assert.equal((await agent.request('GET', '/status')).status, 200)
  })

  it('fails a restore of a missing object before the restore script runs', async () => {
    const id = managerId()
    await agent.request(
      'PUT',
      '/restore',
      managerRestoreBody(id, s3Destination(target, { filename: 'not-there.dump' }), { parameters: { job: id } }),
    )
    const done = await agent.waitFor('restore', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /download of backups\/not-there\.dump failed: the object does not exist/)
    assert.deepEqual(await agent.stagesRun(id), ['pre-restore-lock', 'restore-cleanup', 'post-restore-unlock'])
  })

  it('replaces an existing restore file only when allowed_to_delete_files is true', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target)))
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    const { filename } = backup
    const rid = managerId()
    await mkdir(join(agent.restoreDir, rid), { recursive: true })
    await writeFile(join(agent.restoreDir, rid, filename), 'precious')
    await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename })))
    const refused = await agent.waitFor('restore', rid)
    assert.equal(refused.status, 'FAILED')
    assert.match(refused.error_message, /already exists and allowed_to_delete_files is false/)
    assert.equal(await readFile(join(agent.restoreDir, rid, filename), 'utf8'), 'precious')

    const permissive = await startAgent({ env: { allowed_to_delete_files: 'true', directory_restore: agent.restoreDir } })
    try {
      await permissive.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename })))
      const done = await permissive.waitFor('restore', rid)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      const replaced = await readFile(join(agent.restoreDir, rid, filename))
      assert.equal(replaced.length, 1048576)
    } finally {
      await permissive.stop()
    }
  })

  it('refuses a corrupted object: checksum mismatch, file deleted, the restore script never runs', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target)))
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    const key = `backups/${backup.filename}`
    // rewritten behind the agent's back, the stored digest left as it was
    await s3.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(1024, 1), Metadata: { sha256: backup.checksum.value } }),
    )
    const rid = managerId()
    await agent.request(
      'PUT',
      '/restore',
      managerRestoreBody(rid, s3Destination(target, { filename: backup.filename }), { parameters: { job: rid } }),
    )
    const done = await agent.waitFor('restore', rid)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /^checksum mismatch: /)
    assert.equal(done.checksum_verified, false)
    assert.deepEqual(await agent.stagesRun(rid), ['pre-restore-lock', 'restore-cleanup', 'post-restore-unlock'])
    assert.deepEqual(readdirSync(join(agent.restoreDir, rid)), [])
  })

  it('restores an object without a stored checksum as unverified, unless require_checksum is true', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'backups/legacy.dump', Body: 'from the old agent' }))
    const rid = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename: 'legacy.dump' })))
    const done = await agent.waitFor('restore', rid)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.equal(done.checksum_verified, false)
    assert.equal(done.checksum, undefined)

    const strict = await startAgent({ env: { require_checksum: 'true' } })
    try {
      const sid = managerId()
      await strict.request('PUT', '/restore', managerRestoreBody(sid, s3Destination(target, { filename: 'legacy.dump' })))
      const refused = await strict.waitFor('restore', sid)
      assert.equal(refused.status, 'FAILED')
      assert.match(refused.error_message, /has no stored checksum and require_checksum is true/)
    } finally {
      await strict.stop()
    }
  })
})
