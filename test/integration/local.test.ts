// The LOCAL destination and GET /healthz against a real agent process.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

describe('LOCAL destination', () => {
  let agent: Agent
  let storageRoot: string
  before(async () => {
    agent = await startAgent({
      env: { local_storage_root: 'objects' },
      scripts: { backup: 'sleep "${sleep:-0}"; echo "rows of $4" > "$5.sql"' },
    })
    storageRoot = join(agent.root, 'objects') // relative to the agent's working directory
  })
  after(async () => {
    await agent.stop()
  })

  it('backs up into local_storage_root/<prefix> and restores from there', async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, { type: 'LOCAL', filenamePrefix: 'pg/' }))).status, 201)
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    assert.equal(backup.type, 'LOCAL')
    assert.equal(await readFile(join(storageRoot, 'pg', backup.filename), 'utf8'), 'rows of orders\n')

    const rid = managerId()
    const res = await agent.request(
      'PUT',
      '/restore',
      managerRestoreBody(rid, { type: 'LOCAL', filenamePrefix: 'pg/', filename: backup.filename }),
    )
    assert.equal(res.status, 201, res.text)
    const restore = await agent.waitFor('restore', rid)
    assert.equal(restore.status, 'SUCCEEDED', restore.error_message)
    assert.equal(restore.restore_log, 'rows of orders\n')
    assert.equal(restore.checksum_verified, true)
    assert.deepEqual(restore.checksum, backup.checksum)
  })

  it('rejects prefixes and file names that would leave the root', async () => {
    for (const destination of [
      { type: 'LOCAL', filenamePrefix: '../', filename: 'x' },
      { type: 'LOCAL', filenamePrefix: 'a/../../', filename: 'x' },
      { type: 'LOCAL', filenamePrefix: '/etc/', filename: 'passwd' },
      { type: 'LOCAL', filename: '..' },
    ]) {
      const res = await agent.request('PUT', '/restore', managerRestoreBody(managerId(), destination))
      assert.equal(res.status, 400, JSON.stringify(destination))
    }
  })

  it('a restore of a missing object fails with a message that says so', async () => {
    const id = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(id, { type: 'LOCAL', filename: 'nothing.sql' }))
    const done = await agent.waitFor('restore', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /no such object/)
  })
})

describe('GET /healthz', () => {
  it('answers 200 without credentials while serving, 503 while shutting down, and says nothing else', async () => {
    const agent = await startAgent({ env: { shutdown_grace_seconds: '30' }, scripts: { backup: 'sleep 2; echo x > "$5.sql"' } })
    try {
      const ok = await agent.request('GET', '/healthz', undefined, { auth: null })
      assert.equal(ok.status, 200)
      assert.deepEqual(ok.json(), { status: 'ok' })
      const id = managerId()
      await agent.request('POST', '/backup', managerBackupBody(id, { type: 'LOCAL' }))
      process.kill(agent.pid, 'SIGTERM')
      await new Promise((r) => setTimeout(r, 300))
      const stopping = await agent.request('GET', '/healthz', undefined, { auth: null })
      assert.equal(stopping.status, 503)
      assert.deepEqual(stopping.json(), { status: 'stopping' })
      // other routes still need credentials
      assert.equal((await agent.request('GET', `/backup/${id}`, undefined, { auth: null })).status, 401)
    } finally {
      await agent.stop()
    }
  })
})
