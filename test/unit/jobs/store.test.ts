import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobStore, type StoredJob } from '../../../src/jobs/store.ts'

const row = (id: string, status: StoredJob['status'], endedAt: number | null): StoredJob => ({
  kind: 'backup', id, status, body: `{"id":"${id}"}`, record: '{}', startedAt: 1, endedAt,
})

describe('JobStore', () => {
  it('creates an owner-only folder and file at the current schema version', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'store-')), 'state')
    const store = new JobStore(dir)
    assert.equal(store.schemaVersion, 1)
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    assert.equal(statSync(join(dir, 'jobs.sqlite')).mode & 0o777, 0o600)
    store.close()
  })

  it('keeps rows across reopening and updates them in place', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    store.save(row('a', 'RUNNING', null))
    store.save({ ...row('a', 'FAILED', 5), body: '{"v":2}' })
    store.close()
    const again = new JobStore(dir)
    assert.deepEqual(again.all().map((r) => [r.id, r.status, r.body, r.endedAt]), [['a', 'FAILED', '{"v":2}', 5]])
    again.close()
  })

  it('offers old and surplus finished jobs for pruning, never running ones', () => {
    const store = new JobStore(mkdtempSync(join(tmpdir(), 'store-')))
    store.save(row('old', 'SUCCEEDED', 100))
    store.save(row('mid', 'FAILED', 200))
    store.save(row('new', 'SUCCEEDED', 300))
    store.save(row('running', 'RUNNING', null))
    assert.deepEqual(store.prunable(150, 10).map((r) => r.id), ['old'])
    assert.deepEqual(store.prunable(0, 1).map((r) => r.id).sort(), ['mid', 'old'])
    store.close()
  })
})
