// The contract as a manager lives it: the filename a backup reports is sent back, unchanged, in
// a restore (SPEC §1). Every name a backup reports must be one the restore accepts.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody, s3Destination, skipStorageDestination } from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

describe("manager contract: a backup's filename round-trips into a restore", () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-contract')
  const target = s3.target(bucket)
  let agent: Agent

  before(async () => {
    await s3.createBucket(bucket)
    agent = await startAgent({
      scripts: {
        // the extension a real script adds; `name` overrides the whole name
        backup: 'echo data > "${name:-$5.sql.gz.enc}"',
        restore: 'cat "$5"',
      },
    })
  })
  after(() => agent.stop())

  // A long host and database give a generated base that must be shortened with room to spare.
  for (const [host, database] of [
    ['h'.repeat(150), 'd'.repeat(150)],
    [`db-${'ü'.repeat(120)}`, 'orders'],
    ['10.0.0.12', 'x'.repeat(190)],
  ] as const) {
    it(`restores what it backed up for a ${host.length}-character host and a ${database.length}-character database`, async () => {
      const id = managerId()
      assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { host, database }))).status, 201)
      const backup = await agent.waitFor('backup', id)
      assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
      assert.ok(Buffer.byteLength(backup.filename) <= 200, `${backup.filename} is ${Buffer.byteLength(backup.filename)} bytes`)
      assert.ok(backup.filename.endsWith('.sql.gz.enc'), backup.filename)

      const rid = managerId()
      const answer = await agent.request(
        'PUT',
        '/restore',
        managerRestoreBody(rid, s3Destination(target, { filename: backup.filename }), { host, database }),
      )
      assert.equal(answer.status, 201, answer.text)
      const restore = await agent.waitFor('restore', rid)
      assert.equal(restore.status, 'SUCCEEDED', restore.error_message)
      assert.equal(restore.restore_log, 'data\n')
    })
  }

  it('fails a backup whose file name a restore would refuse, before uploading it (skipStorage too)', async () => {
    const refused: [name: string, reason: RegExp][] = [
      ['n'.repeat(201), /is 201 bytes: a restore filename is at most 200/],
      ['é'.repeat(101), /is 202 bytes/],
      ['..osb', /decodes to the name without \.osb/],
    ]
    for (const [name, reason] of refused) {
      for (const destination of [s3Destination(target), skipStorageDestination()]) {
        const id = managerId()
        assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, destination, { parameters: [{ name }] }))).status, 201)
        const backup = await agent.waitFor('backup', id)
        assert.equal(backup.status, 'FAILED')
        assert.match(backup.error_message, reason)
        assert.match(backup.error_message, /could not be restored: it is not uploaded/)
      }
    }
    assert.deepEqual(
      await s3.keys(bucket).then((keys) => keys.filter((key) => refused.some(([name]) => key.endsWith(name)))),
      [],
      'nothing uploaded',
    )
    // the bound is the restore's: 200 bytes round-trip
    const id = managerId()
    const fits = 'f'.repeat(200)
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { parameters: [{ name: fits }] }))).status,
      201,
    )
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    const rid = managerId()
    assert.equal((await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename: fits })))).status, 201)
    assert.equal((await agent.waitFor('restore', rid)).status, 'SUCCEEDED')
  })
})
