// How a stream ends once its script exited: the grace, a stream nobody holds any more, the stage's
// limits, and what the failure says when a script left its stream held.
import { after, afterEach, beforeEach, describe, it, mock } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../src/errors.ts'
import { heldMessage, STREAM_GRACE_MS, streamAfterScript } from '../../../src/jobs/stream-end.ts'

const holder = (pid: number, group: number) => ({ pid, group, startTime: '1' })
const backup = { what: 'backup', variable: 'BACKUP_STREAM' } as const
const restore = { what: 'restore', variable: 'RESTORE_STREAM' } as const

describe('heldMessage', () => {
  it('names the stream, the grace, the pids and what was done', () => {
    assert.equal(STREAM_GRACE_MS, 5000)
    assert.equal(
      heldMessage(backup, [holder(42, 7)], 7),
      'the backup script exited but a process it started (pid 42) kept BACKUP_STREAM open for 5 s; it was stopped and the backup is incomplete',
    )
    assert.equal(
      heldMessage(restore, [holder(42, 7), holder(43, 7)], 7),
      'the restore script exited but processes it started (pids 42, 43) kept RESTORE_STREAM open for 5 s; they were stopped and the restore is incomplete',
    )
    assert.equal(
      heldMessage(backup, [holder(42, 7), holder(99, 99)], 7),
      "the backup script exited but a process it started (pid 42) and a process outside its process group (pid 99) kept BACKUP_STREAM open for 5 s; the one it started was stopped, the agent gave up on the stream (it does not signal a process outside the script's group) and the backup is incomplete",
    )
    assert.equal(
      heldMessage(
        backup,
        Array.from({ length: 12 }, (_, i) => holder(100 + i, 7)),
        7,
      ),
      'the backup script exited but processes it started (pids 100, 101, 102, 103, 104, 105, 106, 107, 108, 109 and 2 more) kept BACKUP_STREAM open for 5 s; they were stopped and the backup is incomplete',
    )
    assert.equal(
      heldMessage(restore, [holder(42, 7)], 7, 'after its end'),
      'the restore script exited but a process it started (pid 42) still had RESTORE_STREAM open 5 s later, after the stream had ended (a process reading it?); it was stopped and the restore may be incomplete',
    )
    assert.equal(
      heldMessage(backup, [holder(99, 99)], undefined),
      "the backup script exited but a process outside its process group (pid 99) kept BACKUP_STREAM open for 5 s; the agent gave up on the stream (it does not signal a process outside the script's group) and the backup is incomplete",
    )
  })
})

describe('streamAfterScript', () => {
  // Mocked setTimeout: the grace passes on tick(), no test waits for it. The pipe is a file no
  // process holds, so the /proc scan (real) finds nobody.
  const dir = mkdtempSync(join(tmpdir(), 'osb-stream-end-'))
  writeFileSync(join(dir, 'pipe'), '')
  const info = statSync(join(dir, 'pipe'))
  const pipe = { dev: info.dev, ino: info.ino }
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }))
  afterEach(() => mock.timers.reset())
  after(() => rmSync(dir, { recursive: true, force: true }))

  const until = async (condition: () => boolean) => {
    while (!condition()) await new Promise((resolve) => setImmediate(resolve))
  }
  function side(settled: Promise<unknown>) {
    const calls = { giveUp: [] as string[], unheld: 0 }
    return {
      calls,
      side: {
        what: 'backup',
        variable: 'BACKUP_STREAM',
        pipe,
        settled,
        whenUnheld: () => calls.unheld++,
        giveUp: (reason: string) => calls.giveUp.push(reason),
      } as const,
    }
  }

  it('a stream that ends within the grace: no failure, nothing given up', async () => {
    let end!: () => void
    const { side: s, calls } = side(new Promise<void>((resolve) => (end = resolve)))
    const result = streamAfterScript(s, { scriptSucceeded: true, group: 1, stage: undefined })
    mock.timers.tick(STREAM_GRACE_MS - 1)
    end()
    assert.equal(await result, undefined)
    assert.deepEqual(calls, { giveUp: [], unheld: 0 })
  })

  it('past the grace with nobody holding the pipe, the rest is waited for (a slow upload), not failed', async () => {
    let end!: () => void
    const { side: s, calls } = side(new Promise<void>((resolve) => (end = resolve)))
    let result: JobError | undefined | 'pending' = 'pending'
    streamAfterScript(s, { scriptSucceeded: true, group: 1, stage: undefined }).then((r) => (result = r))
    mock.timers.tick(STREAM_GRACE_MS)
    await until(() => calls.unheld === 1)
    mock.timers.tick(60 * 60 * 1000)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(result, 'pending', 'still waiting, an hour later')
    end()
    await until(() => result !== 'pending')
    assert.equal(result, undefined)
    assert.deepEqual(calls.giveUp, [])
  })

  it("the stage's timeout or cancel ends the wait: its reason is the failure and the stream is given up", async () => {
    for (const afterGrace of [false, true]) {
      const stage = new AbortController()
      const { side: s, calls } = side(new Promise(() => {}))
      const result = streamAfterScript(s, { scriptSucceeded: true, group: 1, stage: stage.signal })
      if (afterGrace) {
        mock.timers.tick(STREAM_GRACE_MS)
        await until(() => calls.unheld === 1)
      }
      stage.abort('backup timed out after 2 s')
      const failure = await result
      assert.ok(failure instanceof JobError)
      assert.equal(failure.message, 'backup timed out after 2 s')
      assert.deepEqual(calls.giveUp, ['backup timed out after 2 s'])
    }
  })

  it('a failed script gives its stream up at once; the failure stays the script’s', async () => {
    const { side: s, calls } = side(new Promise(() => {}))
    assert.equal(await streamAfterScript(s, { scriptSucceeded: false, group: 1, stage: undefined }), undefined)
    assert.deepEqual(calls, { giveUp: ['the backup script failed'], unheld: 0 })
  })
})
