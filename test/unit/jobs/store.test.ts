import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { CHECKPOINT_DELAY_MS, JobStore, KEYS_QUERY, OWING_QUERY, type StoredJob } from '../../../src/jobs/store.ts'

const row = (id: string, status: StoredJob['status'], endedAt: number | null): StoredJob => ({
  kind: 'backup',
  id,
  status,
  body: `{"id":"${id}"}`,
  record: '{}',
  startedAt: 1,
  endedAt,
})

describe('JobStore', () => {
  it('creates an owner-only folder and file at the current schema version', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'store-')), 'state')
    const store = new JobStore(dir)
    assert.equal(store.schemaVersion, 3)
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
    assert.deepEqual(
      again.all().map((r) => [r.id, r.status, r.body, r.endedAt]),
      [['a', 'FAILED', '{"v":2}', 5]],
    )
    again.close()
  })

  it('hands its page cache back when idle and goes on as before; closed, it ignores the call', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    for (let i = 0; i < 200; i++) store.save({ ...row(`j${i}`, 'SUCCEEDED', i), body: 'x'.repeat(2000) })
    store.releaseMemory()
    assert.equal(store.all().length, 200)
    store.save(row('after', 'RUNNING', null))
    assert.equal(store.all().find((r) => r.id === 'after')?.status, 'RUNNING')
    store.close()
    assert.doesNotThrow(() => store.releaseMemory())
  })

  it('offers old and surplus finished jobs for pruning, never running ones', () => {
    const store = new JobStore(mkdtempSync(join(tmpdir(), 'store-')))
    store.save(row('old', 'SUCCEEDED', 100))
    store.save(row('mid', 'FAILED', 200))
    store.save(row('new', 'SUCCEEDED', 300))
    store.save(row('running', 'RUNNING', null))
    assert.deepEqual(
      store.prunable(150, 10).map((r) => r.id),
      ['old'],
    )
    assert.deepEqual(
      store
        .prunable(0, 1)
        .map((r) => r.id)
        .sort(),
      ['mid', 'old'],
    )
    store.close()
  })

  it("leaves no byte of a running job's record in its files once the job no longer owes anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    const secret = 'recovery-secret-Vq82'
    // small and large records (overflow pages), written many times as a job runs
    const running = (id: string, size: number, pending?: string[]) => ({
      ...row(id, 'RUNNING', null),
      record: JSON.stringify({ request: { authSecret: secret, padding: secret.repeat(size) }, ...(pending ? { pending } : {}) }),
    })
    const bytes = () =>
      ['', '-wal']
        .map((suffix) => join(dir, `jobs.sqlite${suffix}`))
        .filter(existsSync)
        .map((f) => readFileSync(f).toString('latin1'))
        .join('')
    for (let i = 0; i < 20; i++) {
      store.save(running('small', 1))
      store.save(running('large', 600))
    }
    store.save({ ...running('owed', 300, ['post-backup-unlock']), status: 'FAILED', endedAt: 3 })
    assert.ok(bytes().includes(secret), 'the test sees what it looks for')
    store.save({ ...row('small', 'FAILED', 4), record: '{"request":{"authSecret":""}}' })
    store.save({ ...row('large', 'SUCCEEDED', 5), record: '{"request":{"authSecret":""}}' })
    assert.ok(bytes().includes(secret), 'a job whose recovery still owes steps keeps what it needs')
    store.save({ ...row('owed', 'FAILED', 3), record: '{"request":{"authSecret":""},"pending":[]}' })
    // the checkpoint that drops the WAL's old frames runs within CHECKPOINT_DELAY_MS
    const until = Date.now() + CHECKPOINT_DELAY_MS + 2000
    while (bytes().includes(secret) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(!bytes().includes(secret), 'no byte of the secret is left in the database or its WAL')
    store.close()
    assert.deepEqual(
      new JobStore(dir)
        .all()
        .map((r) => `${r.id} ${r.status}`)
        .sort(),
      ['large SUCCEEDED', 'owed FAILED', 'small FAILED'],
    )
  })

  it('runs a due checkpoint when it closes: an agent that stops at once leaves no secret in the WAL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    const secret = 'closing-secret-8Hq1'
    for (let i = 0; i < 5; i++) store.save({ ...row('job', 'RUNNING', null), record: JSON.stringify({ request: { authSecret: secret } }) })
    store.save({ ...row('job', 'SUCCEEDED', 9), record: '{"request":{"authSecret":""}}' })
    store.close()
    const bytes = ['', '-wal']
      .map((suffix) => join(dir, `jobs.sqlite${suffix}`))
      .filter(existsSync)
      .map((f) => readFileSync(f).toString('latin1'))
      .join('')
    assert.ok(bytes.includes('SUCCEEDED') || bytes.length > 0, 'the files are there')
    assert.ok(!bytes.includes(secret), 'no byte of the secret is left after close')
  })

  it('keeps one record key, made on first use, across reopening', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    const key = store.recordKey()
    assert.equal(key.length, 32)
    assert.deepEqual(store.recordKey(), key)
    store.close()
    const again = new JobStore(dir)
    assert.deepEqual(again.recordKey(), key)
    again.close()
  })

  it("reads every job's key at start, and the body and record only of those that may owe work", () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const store = new JobStore(dir)
    store.save({ ...row('done', 'SUCCEEDED', 5), startedAt: 3 })
    store.save({ ...row('running', 'RUNNING', null), startedAt: 1, record: '{"a":1}' })
    store.save({ ...row('owes', 'FAILED', 4), startedAt: 2, record: '{"pending":["unlock"]}' })
    store.save({ ...row('owed', 'FAILED', 6), startedAt: 4, record: '{"pending":[]}' })
    assert.deepEqual(store.keys(), [
      { kind: 'backup', id: 'running', status: 'RUNNING', startedAt: 1, endedAt: null, body: '{"id":"running"}', record: '{"a":1}' },
      { kind: 'backup', id: 'owes', status: 'FAILED', startedAt: 2, endedAt: 4, body: '{"id":"owes"}', record: '{"pending":["unlock"]}' },
      { kind: 'backup', id: 'done', status: 'SUCCEEDED', startedAt: 3, endedAt: 5 },
      { kind: 'backup', id: 'owed', status: 'FAILED', startedAt: 4, endedAt: 6 },
    ])
    store.close()
    // from the indexes, not from every row's pages (a thousand rows are 2 MB)
    const db = new DatabaseSync(join(dir, 'jobs.sqlite'))
    const plan = (query: string) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${query}`)
        .all()
        .map((r) => r.detail)
    assert.deepEqual(plan(KEYS_QUERY), ['SCAN jobs USING COVERING INDEX jobs_keys'])
    assert.deepEqual(plan(OWING_QUERY), ['SCAN jobs USING INDEX jobs_owing'])
    db.close()
  })

  it('upgrades a store of schema version 2: the same keys, now from the indexes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'store-'))
    const old = new DatabaseSync(join(dir, 'jobs.sqlite'))
    old.exec(`CREATE TABLE jobs (kind TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, record TEXT NOT NULL,
        started_at INTEGER NOT NULL, ended_at INTEGER, PRIMARY KEY (kind, id));
      CREATE INDEX jobs_by_end ON jobs (ended_at);
      CREATE TABLE record_key (key BLOB NOT NULL);
      PRAGMA user_version = 2;`)
    const insert = old.prepare('INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)')
    insert.run('restore', 'r', 'RUNNING', '{"id":"r"}', '{"b":2}', 1, null)
    insert.run('backup', 'f', 'SUCCEEDED', '{"id":"f"}', '{}', 2, 3)
    old.close()
    const store = new JobStore(dir)
    assert.equal(store.schemaVersion, 3)
    assert.deepEqual(store.keys(), [
      { kind: 'restore', id: 'r', status: 'RUNNING', startedAt: 1, endedAt: null, body: '{"id":"r"}', record: '{"b":2}' },
      { kind: 'backup', id: 'f', status: 'SUCCEEDED', startedAt: 2, endedAt: 3 },
    ])
    store.save({ kind: 'backup', id: 'f', status: 'SUCCEEDED', body: '{}', record: '{"pending":["unlock"]}', startedAt: 2, endedAt: 3 })
    assert.equal((store.keys()[1] as StoredJob).record, '{"pending":["unlock"]}', 'the partial index follows an update')
    store.close()
  })
})
