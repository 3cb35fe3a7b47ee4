// What the stage's failure says when a script left its stream held.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { heldMessage, STREAM_GRACE_MS } from '../../../src/jobs/stream-end.ts'

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
      heldMessage(backup, [holder(99, 99)], undefined),
      "the backup script exited but a process outside its process group (pid 99) kept BACKUP_STREAM open for 5 s; the agent gave up on the stream (it does not signal a process outside the script's group) and the backup is incomplete",
    )
  })
})
