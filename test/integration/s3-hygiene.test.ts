// Storage hygiene of a real agent against the real S3 server (issue 17): after a successful
// backup, the multipart uploads under the backup's prefix that were started longer ago than
// storage_gc_grace_hours and never completed are aborted; a fresh one and one under another
// prefix are kept. The grace is given in fractions of an hour so one pass sees both ages.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout } from 'node:timers/promises'
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3'
import { startAgent, WRITE_DUMP } from '../helpers/agent.ts'
import { managerBackupBody, managerId, s3Destination } from '../helpers/bodies.ts'
import { s3TestBucket } from '../helpers/storage.ts'

describe('S3 storage hygiene of a backup', () => {
  it('aborts a stale multipart upload under the prefix, keeps a fresh one and another prefix’s', async () => {
    const { s3, bucket, target } = s3TestBucket('agent-s3-hygiene')
    await s3.createBucket(bucket)
    const leave = async (key: string) => {
      const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
      await s3.client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: Buffer.alloc(1000, 1) }))
      return UploadId as string
    }
    const stale = await leave('backups/crashed.sql')
    const elsewhere = await leave('other/crashed.sql')
    // 0.001 h = 3.6 s; the lab rounds an upload's start up to the next second
    await setTimeout(5_000)
    const fresh = await leave('backups/in-progress.sql')
    const agent = await startAgent({ env: { storage_gc_grace_hours: '0.001' }, scripts: { backup: WRITE_DUMP } })
    try {
      const id = managerId()
      assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target)))).status, 201)
      const done = await agent.waitFor('backup', id)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      assert.deepEqual(done.storage_reclaimed, { objects: 1, bytes: 1000 })
      const left = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
      const ids = (left.Uploads ?? []).map((u) => u.UploadId)
      assert.ok(!ids.includes(stale), 'the stale upload was aborted')
      assert.ok(ids.includes(fresh), 'the fresh upload is kept')
      assert.ok(ids.includes(elsewhere), 'another prefix is not the backup’s')
      const metrics = (await agent.request('GET', '/metrics')).text
      assert.match(metrics, /osb_backup_agent_storage_reclaimed_objects_total\{backend="s3"\} 1\b/)
    } finally {
      await agent.stop()
    }
  })
})
