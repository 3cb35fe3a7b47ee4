// The registry's write path (publish before anything else can see a change, rows kept in memory
// while the store refuses writes, written again once it takes them) and its refusals while a
// job still owes recovery steps.
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newJob, pollingBody, type Job } from '../../../src/jobs/job.ts'
import { recoveryRecord } from '../../../src/jobs/recovery-record.ts'
import { RECENT_MAX_ENTRIES } from '../../../src/jobs/recent-bodies.ts'
import { JobRegistry } from '../../../src/jobs/registry.ts'
import type { JobRequest } from '../../../src/jobs/request.ts'
import { logFields } from '../../../src/jobs/stages.ts'
import { JobStore, type StoredJob } from '../../../src/jobs/store.ts'

/** A real store whose writes fail while `failure` is set, as SQLite's do on a full disk. */
class FailingStore extends JobStore {
  failure: Error | undefined
  writes = 0
  override save(job: StoredJob): void {
    this.writes++
    if (this.failure) throw this.failure
    super.save(job)
  }
  override replaceAll(rows: readonly StoredJob[]): void {
    this.writes++
    if (this.failure) throw this.failure
    super.replaceAll(rows)
  }
  override remove(kind: StoredJob['kind'], id: string): void {
    this.writes++
    if (this.failure) throw this.failure
    super.remove(kind, id)
  }
}

/** The error node:sqlite throws, with SQLite's result code. */
function sqliteError(errcode: number, errstr: string): Error {
  return Object.assign(new Error(errstr), { code: 'ERR_SQLITE_ERROR', errcode, errstr })
}
const FULL = () => sqliteError(13, 'database or disk is full')

function request(id: string, kind: JobRequest['kind'] = 'backup'): JobRequest {
  return {
    kind,
    id,
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL', skipStorage: true, filenamePrefix: '', filename: '' },
    database: { host: 'h', username: 'u', password: 'db-password-1', database: 'd', parameters: {} },
  }
}

const job = (id: string, now = new Date(1_000_000)) => newJob(request(id), logFields('backup'), now)

/** A finished job's row whose recovery still owes `pending`. */
function owingRow(id: string, pending: string[], endedAt = 2_000_000): StoredJob {
  const j = job(id)
  j.status = 'FAILED'
  j.state = 'finished'
  j.errorMessage = 'interrupted by agent restart during backup'
  j.endedAt = new Date(endedAt)
  j.attempted = ['pre-backup-lock', 'pre-backup-check', 'backup']
  return {
    kind: 'backup',
    id,
    status: 'FAILED',
    body: JSON.stringify(pollingBody(j)),
    record: JSON.stringify(recoveryRecord(j, pending)),
    startedAt: j.startedAt.getTime(),
    endedAt,
  }
}

const stored = (store: JobStore, id: string) => store.all().find((r) => r.id === id)

/** Starts a job in the registry and finishes it with this status. */
function finishedJob(registry: JobRegistry, id: string, status: 'SUCCEEDED' | 'FAILED', endedAt: number): Job {
  const j = job(id)
  assert.ok(typeof registry.start(j) === 'object')
  j.status = status
  j.state = 'finished'
  j.endedAt = new Date(endedAt)
  registry.finish(j)
  return j
}

describe('JobRegistry', () => {
  let store: FailingStore
  beforeEach(() => {
    store = new FailingStore(mkdtempSync(join(tmpdir(), 'registry-')))
  })
  afterEach(() => store.close())

  it('publishes each change to the store and to polls alike', () => {
    const registry = new JobRegistry(2, store)
    const j = job('a')
    const entry = registry.start(j)
    assert.ok(typeof entry === 'object')
    assert.equal(stored(store, 'a')?.body, entry.body, 'the store holds what the first poll shows')
    j.state = 'pre-backup-lock'
    j.attempted.push('pre-backup-lock')
    assert.equal(registry.publish(j), true)
    assert.equal(stored(store, 'a')?.body, registry.get('backup', 'a')?.body)
    assert.deepEqual(JSON.parse(stored(store, 'a')?.record ?? '{}').attempted, ['pre-backup-lock'])
    j.status = 'SUCCEEDED'
    j.state = 'finished'
    j.endedAt = new Date(1_000_500)
    assert.equal(registry.finish(j), true)
    assert.equal(registry.running, 0)
    assert.equal(JSON.parse(stored(store, 'a')?.body ?? '{}').status, 'SUCCEEDED')
    assert.equal(registry.delete('backup', 'a'), 'deleted')
    assert.equal(stored(store, 'a'), undefined)
  })

  it('keeps the polling bytes in a block of their own, not a slice of a shared pool', () => {
    const registry = new JobRegistry(2, store)
    finishedJob(registry, 'own', 'SUCCEEDED', 1_000_500)
    const entry = registry.get('backup', 'own')
    assert.ok(entry)
    const bytes = registry.pollingBytes(entry)
    assert.equal(bytes.toString('utf8'), entry.body)
    // a pooled slice would keep its whole pool alive for as long as the record is kept
    assert.equal(bytes.buffer.byteLength, bytes.length)
    assert.equal(registry.pollingBytes(entry), bytes, 'encoded once per change')
  })

  it('says when the last running job has finished, and only then', () => {
    const registry = new JobRegistry(2, store)
    let idle = 0
    registry.whenIdle(() => idle++)
    const first = job('i1')
    const second = job('i2')
    assert.ok(typeof registry.start(first) === 'object')
    assert.ok(typeof registry.start(second) === 'object')
    for (const j of [first, second]) {
      j.status = 'SUCCEEDED'
      j.state = 'finished'
      j.endedAt = new Date(1_000_500)
    }
    registry.finish(first)
    assert.equal(idle, 0, 'one job still runs')
    registry.finish(second)
    assert.equal(idle, 1)
  })

  it('never throws when the store refuses a write; polls answer from memory and the slot comes back', () => {
    const registry = new JobRegistry(1, store)
    const j = job('b')
    assert.ok(typeof registry.start(j) === 'object')
    store.failure = FULL()
    j.state = 'backup'
    j.attempted.push('pre-backup-lock', 'pre-backup-check', 'backup')
    assert.equal(registry.publish(j), false)
    assert.equal(JSON.parse(registry.get('backup', 'b')?.body ?? '{}').state, 'backup', 'the poll shows the change')
    assert.equal(JSON.parse(stored(store, 'b')?.body ?? '{}').state, 'starting', 'the store does not have it yet')
    assert.equal(registry.storeProblem, 'the job store could not be written (disk full?)')
    assert.equal(registry.cancel('backup', 'b'), 'cancelled', 'a running job can still be cancelled')
    j.status = 'FAILED'
    j.state = 'finished'
    j.endedAt = new Date(1_000_900)
    assert.equal(registry.finish(j), false)
    assert.equal(registry.running, 0)
    assert.equal(registry.get('backup', 'b')?.live, undefined)
  })

  it('refuses new jobs while rows wait, and writes every waiting row (newest state) once the store takes writes', () => {
    const registry = new JobRegistry(4, store)
    const a = job('a')
    const b = job('b')
    registry.start(a)
    registry.start(b)
    store.failure = FULL()
    a.state = 'backup'
    registry.publish(a)
    b.state = 'pre-backup-check'
    registry.publish(b)
    a.state = 'backup-cleanup'
    registry.publish(a)
    assert.equal(registry.unwritten, 2)
    assert.equal(registry.start(job('c')), 'store', 'a new job is refused (503)')
    assert.equal(registry.get('backup', 'c'), undefined, 'and registers nothing')

    store.failure = undefined
    const c = job('c')
    assert.ok(typeof registry.start(c) === 'object', 'the next write flushes the waiting rows first')
    assert.equal(registry.unwritten, 0)
    assert.equal(registry.storeProblem, undefined)
    assert.equal(JSON.parse(stored(store, 'a')?.body ?? '{}').state, 'backup-cleanup')
    assert.equal(JSON.parse(stored(store, 'b')?.body ?? '{}').state, 'pre-backup-check')
    assert.ok(stored(store, 'c'))
  })

  it('retries waiting rows on a timer that backs off, without any new write', () => {
    mock.timers.enable({ apis: ['setTimeout'] })
    try {
      const problems: (string | undefined)[] = []
      const registry = new JobRegistry(2, store, (problem) => problems.push(problem))
      const j = job('t')
      registry.start(j)
      store.failure = sqliteError(10 | (10 << 8), 'disk I/O error')
      j.state = 'backup'
      registry.publish(j)
      assert.equal(registry.storeProblem, 'the job store could not be written (I/O error)')
      const before = store.writes
      mock.timers.tick(1000)
      assert.equal(store.writes, before + 1, 'first retry after 1 s')
      mock.timers.tick(1999)
      assert.equal(store.writes, before + 1, 'the next one waits 2 s')
      mock.timers.tick(1)
      assert.equal(store.writes, before + 2)
      store.failure = undefined
      mock.timers.tick(4000)
      assert.equal(registry.unwritten, 0)
      assert.equal(JSON.parse(stored(store, 't')?.body ?? '{}').state, 'backup')
      assert.deepEqual(
        problems,
        ['the job store could not be written (I/O error)', undefined],
        'told once when it breaks, once when it works again',
      )
      const after = store.writes
      mock.timers.tick(120_000)
      assert.equal(store.writes, after, 'no retries once everything is written')
    } finally {
      mock.timers.reset()
    }
  })

  it('queues a removal the store refused and makes it once the store takes writes', () => {
    const registry = new JobRegistry(2, store)
    const j = job('d')
    registry.start(j)
    j.status = 'SUCCEEDED'
    j.endedAt = new Date(1_000_100)
    registry.finish(j)
    store.failure = sqliteError(8, 'attempt to write a readonly database')
    assert.equal(registry.delete('backup', 'd'), 'deleted')
    assert.equal(registry.storeProblem, 'the job store could not be written (read-only filesystem?)')
    assert.equal(registry.get('backup', 'd'), undefined)
    assert.ok(stored(store, 'd'), 'still in the store')
    store.failure = undefined
    assert.equal(registry.writeOut(), 0)
    assert.equal(stored(store, 'd'), undefined, 'removed once the store takes writes')
  })

  it('names the store but never a path in its message, whatever the error', () => {
    const registry = new JobRegistry(2, store)
    const j = job('p')
    registry.start(j)
    for (const error of [
      FULL(),
      Object.assign(new Error('EROFS: read-only file system, open /var/lib/x/jobs.sqlite'), { code: 'EROFS' }),
      new Error('unable to open /secret/path/jobs.sqlite'),
    ]) {
      store.failure = error
      registry.publish(j)
      assert.match(registry.storeProblem ?? '', /^the job store could not be written \(/)
      assert.doesNotMatch(registry.storeProblem ?? '', /\//)
    }
  })

  it('a finished job whose recovery owes steps is loaded for recovery and cannot be deleted, pruned or reused', () => {
    store.save(owingRow('owes', ['post-backup-unlock']))
    store.save(owingRow('done', [], 1_500_000))
    const registry = new JobRegistry(2, store)
    const owing = registry.load()
    assert.deepEqual(
      owing.map((r) => r.id),
      ['owes'],
    )
    assert.equal(registry.delete('backup', 'owes'), 'owed')
    assert.equal(registry.prune(10_000_000, 0, 0), 1, 'only the job that owes nothing is pruned')
    assert.ok(registry.get('backup', 'owes'))
    assert.ok(stored(store, 'owes'))
    assert.equal(registry.get('backup', 'done'), undefined)
    assert.equal(registry.start(job('owes')), 'exists', 'the id is not reused (409)')

    // once its recovery has run the steps it is an ordinary finished job
    registry.replace(owingRow('owes', []))
    assert.equal(registry.delete('backup', 'owes'), 'deleted')
  })

  it('store.prunable never offers a job that owes steps', () => {
    store.save(owingRow('owes', ['backup-cleanup', 'post-backup-unlock'], 100))
    store.save(owingRow('free', [], 100))
    store.save({ ...owingRow('unreadable', [], 100), record: '{not json' })
    assert.deepEqual(
      store
        .prunable(1_000, 0)
        .map((r) => r.id)
        .sort(),
      ['free', 'unreadable'],
    )
  })

  it("an old job's recovery never writes over a job this process runs with the same id", () => {
    const registry = new JobRegistry(2, store)
    const j = job('same')
    registry.start(j)
    assert.equal(registry.replace(owingRow('same', ['post-backup-unlock'])), false)
    assert.equal(JSON.parse(registry.get('backup', 'same')?.body ?? '{}').status, 'RUNNING')
    assert.equal(stored(store, 'same')?.status, 'RUNNING')
  })

  it('prunes nothing that waits to be written', () => {
    const registry = new JobRegistry(2, store)
    const j: Job = job('w')
    registry.start(j)
    j.status = 'FAILED'
    j.endedAt = new Date(1_000_100)
    registry.finish(j)
    store.failure = FULL()
    j.errorMessage = 'changed'
    registry.publish(j)
    store.failure = undefined
    // the store still has the row, finished long ago; the newer state has not been written
    assert.equal(registry.prune(10_000_000, 0, 0), 0)
    assert.ok(registry.get('backup', 'w'))
  })

  it('a store whose files were removed or moved while it ran is made again at its path and every row written to it', () => {
    const moves = [
      (d: string) => rmSync(d, { recursive: true }),
      (d: string) => renameSync(d, `${d}.old`),
      (d: string) => rmSync(join(d, 'jobs.sqlite-wal')),
    ]
    for (const move of moves) {
      const directory = mkdtempSync(join(tmpdir(), 'registry-relocated-'))
      const own = new JobStore(directory)
      const registry = new JobRegistry(2, own)
      finishedJob(registry, 'done', 'SUCCEEDED', 1_000_100)
      finishedJob(registry, 'gone', 'FAILED', 1_000_200)
      assert.equal(registry.delete('backup', 'gone'), 'deleted')
      const running = job('running')
      assert.ok(typeof registry.start(running) === 'object')
      assert.equal(registry.replace(owingRow('owing', ['post-backup-unlock'])), true)
      move(directory)
      registry.checkStore()
      own.close()
      const reopened = new JobStore(directory)
      try {
        assert.deepEqual(
          reopened
            .all()
            .map((r) => [r.id, r.status])
            .sort(),
          [
            ['done', 'SUCCEEDED'],
            ['owing', 'FAILED'],
            ['running', 'RUNNING'],
          ],
        )
        const { sealed, ...record } = JSON.parse(stored(reopened, 'running')?.record ?? '{}')
        const { sealed: _fresh, ...expected } = JSON.parse(JSON.stringify(recoveryRecord(running)))
        assert.deepEqual(record, expected, 'the running job keeps its recovery record')
        assert.equal(typeof sealed, 'string')
        assert.deepEqual(JSON.parse(stored(reopened, 'owing')?.record ?? '{}').pending, ['post-backup-unlock'], 'still owed')
      } finally {
        reopened.close()
      }
    }
  })

  it('a relocated store that cannot take the rewrite at once gets every row once it can (not only the rows changed since)', () => {
    const directory = mkdtempSync(join(tmpdir(), 'registry-rewrite-'))
    const own = new FailingStore(directory)
    const registry = new JobRegistry(2, own)
    finishedJob(registry, 'kept', 'SUCCEEDED', 1_000_100)
    rmSync(directory, { recursive: true })
    own.failure = FULL()
    registry.checkStore()
    assert.equal(registry.storeProblem, 'the job store could not be written (disk full?)')
    own.failure = undefined
    assert.equal(registry.writeOut(), 0)
    assert.equal(registry.storeProblem, undefined)
    assert.equal(JSON.parse(stored(own, 'kept')?.body ?? '{}').status, 'SUCCEEDED', 'the row written before the relocation is there again')
    own.close()
  })
})

describe('JobRegistry: bodies of finished jobs', () => {
  const directory = () => mkdtempSync(join(tmpdir(), 'registry-bodies-'))

  it('keeps only the most recent finished bodies in memory and reads the others from the store, byte for byte', () => {
    const store = new JobStore(directory())
    const registry = new JobRegistry(2, store)
    const count = RECENT_MAX_ENTRIES + 8
    for (let i = 0; i < count; i++) finishedJob(registry, `j${i}`, 'SUCCEEDED', 1_000_100 + i)
    const oldest = registry.get('backup', 'j0')
    assert.ok(oldest)
    assert.equal(oldest.body, undefined, 'the oldest body left memory')
    assert.equal(registry.get('backup', `j${count - 1}`)?.body, stored(store, `j${count - 1}`)?.body, 'the newest is still there')
    const body = registry.pollingBody(oldest)
    assert.equal(body, stored(store, 'j0')?.body)
    assert.equal(registry.pollingBytes(oldest).toString('utf8'), body)
    assert.equal(registry.get('backup', 'j0')?.body, body, 'polled: kept again')
    assert.equal(registry.get('backup', 'j1')?.body, undefined)
    assert.equal(registry.list('backup', { limit: 1000 }).jobs.length, count, 'a listing reads what it needs')
    assert.deepEqual(
      registry.backupsOf('').map((b) => b.id),
      Array.from({ length: count }, (_, i) => `j${i}`),
      'a verify finds stored and kept backups alike (all named "" here)',
    )
    store.close()
  })

  it('a start keeps no finished body in memory; the first poll reads it', () => {
    const dir = directory()
    const first = new JobStore(dir)
    finishedJob(new JobRegistry(2, first), 'old', 'FAILED', 1_000_100)
    const body = stored(first, 'old')?.body
    first.close()
    const store = new JobStore(dir)
    const registry = new JobRegistry(2, store)
    assert.deepEqual(registry.load(), [])
    const entry = registry.get('backup', 'old')
    assert.ok(entry)
    assert.equal(entry.body, undefined)
    assert.equal(registry.pollingBody(entry), body)
    store.close()
  })

  it('a row the store did not take is answered from memory even once its body left the cache', () => {
    const store = new FailingStore(directory())
    const registry = new JobRegistry(RECENT_MAX_ENTRIES + 4, store)
    const waiting = job('waiting')
    registry.start(waiting)
    store.failure = FULL()
    waiting.status = 'FAILED'
    waiting.endedAt = new Date(1_000_100)
    registry.finish(waiting)
    store.failure = undefined
    for (let i = 0; i < RECENT_MAX_ENTRIES + 2; i++) finishedJob(registry, `later${i}`, 'SUCCEEDED', 1_000_200 + i)
    const entry = registry.get('backup', 'waiting')
    assert.ok(entry)
    assert.equal(entry.body, undefined)
    assert.equal(JSON.parse(registry.pollingBody(entry)).status, 'FAILED')
    store.close()
  })

  it('a relocated store gets every row again, also those whose body left memory', () => {
    const dir = directory()
    const store = new JobStore(dir)
    const registry = new JobRegistry(2, store)
    const count = RECENT_MAX_ENTRIES + 3
    for (let i = 0; i < count; i++) finishedJob(registry, `r${i}`, 'SUCCEEDED', 1_000_100 + i)
    rmSync(dir, { recursive: true })
    registry.checkStore()
    assert.equal(registry.storeProblem, undefined)
    assert.equal(store.all().length, count)
    const entry = registry.get('backup', 'r0')
    assert.ok(entry)
    assert.equal(JSON.parse(registry.pollingBody(entry)).status, 'SUCCEEDED')
    store.close()
  })
})
