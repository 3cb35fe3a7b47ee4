// A held stream cannot hang a job: a backup (restore) script that leaves a process holding
// BACKUP_STREAM (RESTORE_STREAM) after it exited. The job ends FAILED after the documented grace
// (5 s) with a message that names the stream; the holders in the script's process group are
// stopped, one outside it cannot keep the job waiting; cleanup and unlock run; timeout, cancel
// and shutdown cover the wait. Against a real agent and LOCAL storage.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

const GRACE_S = 5
/** The agent's grace between SIGTERM and SIGKILL for a holder. */
const HOLDER_KILL_GRACE_S = 2
/** Slack for a loaded 2-core machine. */
const SLACK_S = 4

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/**
 * Scripts that switch on the database name ($4 for backup and restore, $1 for the lock), so no
 * parameter is needed. A holder writes its own pid to `<pids>/<database>`.
 */
function scripts(pids: string): Record<string, string> {
  const holder = (open: string, extra = '') => `(${extra}echo $BASHPID > "${pids}/$4"; exec sleep 1000) ${open} &`
  return {
    'pre-backup-lock': `case "$1" in lockholder*) (echo $BASHPID > "${pids}/$1"; exec sleep 1000) & ;; esac`,
    backup: [
      'case "$4" in',
      // a complete dump, kept beside for comparison
      `  plain*) head -c 1048576 /dev/urandom | tee "${pids}/$4.original" > "$BACKUP_STREAM" ;;`,
      // some data, then a subshell that holds the pipe
      `  subshell*) head -c 100000 /dev/urandom > "$BACKUP_STREAM"; ${holder('> "$BACKUP_STREAM"')} ;;`,
      // nothing written: the upload never started
      `  silent*) ${holder('> "$BACKUP_STREAM"')} ;;`,
      // a daemon that inherited the descriptor from the script
      `  inherited*) exec 3> "$BACKUP_STREAM"; head -c 100000 /dev/urandom >&3; sleep 1000 & echo $! > "${pids}/$4" ;;`,
      // a holder that ignores SIGTERM
      `  stubborn*) head -c 100000 /dev/urandom > "$BACKUP_STREAM"; ${holder('> "$BACKUP_STREAM"', "trap '' TERM; ")} ;;`,
      // a holder that left the script's process group (and session)
      `  escaped*) head -c 100000 /dev/urandom > "$BACKUP_STREAM"; setsid sleep 1000 > "$BACKUP_STREAM" & echo $! > "${pids}/$4" ;;`,
      // the script opens its own stream for reading, in a background process that outlives it
      `  reader*) (exec sleep 1000) < "$BACKUP_STREAM" & echo $! > "${pids}/$4"; sleep 0.3; head -c 100000 /dev/urandom > "$BACKUP_STREAM" ;;`,
      // a stream small enough to fit in the pipe's buffer
      '  small*) echo "a small dump of $4" > "$BACKUP_STREAM" ;;',
      // a holder that ignores SIGTERM and keeps starting children that inherit the pipe
      `  spawner*) (trap '' TERM; echo $BASHPID > "${pids}/$4"; while :; do sleep 1000 & sleep 0.01; done) > "$BACKUP_STREAM" & ;;`,
      // a small dump in a file (the lock holder test)
      '  *) echo "dump of $4" > "$5.sql" ;;',
      'esac',
    ].join('\n'),
    restore: [
      'case "$4" in',
      `  held*) ${holder('< "$RESTORE_STREAM"')} ;;`,
      `  escaped*) setsid sleep 1000 < "$RESTORE_STREAM" & echo $! > "${pids}/$4" ;;`,
      // exits 0 while a background process still has the stream open, unread (it fit in the pipe)
      `  unread*) sleep 1000 < "$RESTORE_STREAM" & echo $! > "${pids}/$4" ;;`,
      '  *) sha256sum < "$RESTORE_STREAM" | cut -c1-64 ;;',
      'esac',
    ].join('\n'),
  }
}

/** Alive and not a zombie (pid 1 of a container may not reap what the agent killed). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

/** The processes of a group that still run (zombies left aside). */
function runningInGroup(group: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^[0-9]+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
        return Number(fields[2]) === group && fields[0] !== 'Z'
      } catch {
        return false
      }
    })
    .map(Number)
}

async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!existsSync(path) || readFileSync(path, 'utf8').trim() === '') {
    if (Date.now() > deadline) assert.fail(`${path} did not appear within ${timeoutMs} ms`)
    await sleep(20)
  }
}

describe('a held stream cannot hang a job', () => {
  const pids = mkdtempSync(join(tmpdir(), 'osb-held-stream-'))
  /** Every holder pid a test saw: killed in after() if a test left it. */
  const seen = new Set<number>()
  const destination = { type: 'LOCAL', filenamePrefix: 'held/' }
  let agent: Agent
  let plainObject: string | undefined

  const holderPid = async (database: string) => {
    await waitForFile(join(pids, database))
    const pid = Number(readFileSync(join(pids, database), 'utf8').trim())
    assert.ok(pid > 1, `a pid in ${database}`)
    seen.add(pid)
    return pid
  }
  const objectsOf = (database: string) => {
    const folder = join(agent.root, 'objects', 'held')
    return existsSync(folder) ? readdirSync(folder).filter((name) => name.includes(database)) : []
  }
  const backup = async (via: Agent, database: string) => {
    const id = managerId()
    const started = Date.now()
    assert.equal((await via.request('POST', '/backup', managerBackupBody(id, destination, { database }))).status, 201)
    return { id, started }
  }
  /** The cleanup and unlock of this backup (the database names are unique). */
  const assertCleanupAndUnlock = async (via: Agent, id: string, database: string) => {
    const trace = await via.trace()
    assert.ok(trace.includes(`backup-cleanup ${database} ${id}`), `backup-cleanup ran:\n${trace.join('\n')}`)
    assert.ok(trace.includes(`post-backup-unlock ${database}`), `post-backup-unlock ran:\n${trace.join('\n')}`)
  }

  before(async () => {
    agent = await startAgent({ env: { local_storage_root: 'objects' }, scripts: scripts(pids) })
  })
  after(async () => {
    for (const pid of seen) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone already
      }
    }
    await agent.stop()
    rmSync(pids, { recursive: true, force: true })
  })

  it('a streamed backup and a streamed restore still work (no grace when the stream ends with the script)', async () => {
    const database = `plain_${Date.now()}`
    const { id, started } = await backup(agent, database)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.match(done.filename, /\.osb$/)
    assert.ok(Date.now() - started < GRACE_S * 1000, 'no wait for a stream that ended with its script')
    plainObject = done.filename

    const rid = managerId()
    const restoreStarted = Date.now()
    await agent.request(
      'PUT',
      '/restore',
      managerRestoreBody(rid, { ...destination, filename: done.filename }, { database: `restored_${database}` }),
    )
    const restored = await agent.waitFor('restore', rid)
    assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
    assert.equal(restored.restore_log.trim(), sha256(readFileSync(join(pids, `${database}.original`))))
    assert.ok(Date.now() - restoreStarted < GRACE_S * 1000, 'no wait for a restore stream read to its end')
  })

  for (const variant of [
    { name: 'subshell', what: 'a subshell holding the pipe', stoppedIn: GRACE_S },
    { name: 'silent', what: 'a subshell holding the pipe before anything was written', stoppedIn: GRACE_S },
    { name: 'inherited', what: 'a background process that inherited the descriptor', stoppedIn: GRACE_S },
    { name: 'stubborn', what: 'a holder that ignores SIGTERM', stoppedIn: GRACE_S + HOLDER_KILL_GRACE_S },
  ]) {
    it(`backup: ${variant.what} is stopped after the grace and the job fails, naming BACKUP_STREAM`, async () => {
      const database = `${variant.name}_${Date.now()}`
      const { id, started } = await backup(agent, database)
      const pid = await holderPid(database)
      const done = await agent.waitFor('backup', id, 30_000)
      const elapsed = (Date.now() - started) / 1000
      assert.equal(done.status, 'FAILED')
      assert.equal(
        done.error_message,
        `the backup script exited but a process it started (pid ${pid}) kept BACKUP_STREAM open for ${GRACE_S} s; it was stopped and the backup is incomplete`,
      )
      assert.ok(elapsed >= GRACE_S - 0.5, `the grace was waited (${elapsed} s)`)
      assert.ok(elapsed < variant.stoppedIn + SLACK_S, `ended within the grace and a few seconds (${elapsed} s)`)
      assert.equal(running(pid), false, `holder ${pid} was stopped`)
      assert.deepEqual(objectsOf(database), [], 'no object, no partial file')
      await assertCleanupAndUnlock(agent, id, database)
    })
  }

  it('backup: a holder that keeps starting children holding the pipe: none of the group survives, the message names ten pids', async () => {
    const database = `spawner_${Date.now()}`
    const { id } = await backup(agent, database)
    const pid = await holderPid(database)
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const group = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
    assert.ok(group > 1)
    try {
      const done = await agent.waitFor('backup', id, 60_000)
      assert.equal(done.status, 'FAILED')
      assert.match(
        done.error_message,
        /^the backup script exited but processes it started \(pids (\d+, ){9}\d+ and \d+ more\) kept BACKUP_STREAM open for 5 s; they were stopped and the backup is incomplete$/,
      )
      assert.deepEqual(runningInGroup(group), [], 'nothing of the script group is left')
      await assertCleanupAndUnlock(agent, id, database)
    } finally {
      try {
        process.kill(-group, 'SIGKILL') // what a failed test left of this script's group
      } catch {
        // gone
      }
    }
  })

  it('backup: a holder outside the process group is not signalled, but cannot keep the job waiting', async () => {
    const database = `escaped_${Date.now()}`
    const { id, started } = await backup(agent, database)
    const pid = await holderPid(database)
    const done = await agent.waitFor('backup', id, 30_000)
    const elapsed = (Date.now() - started) / 1000
    assert.equal(done.status, 'FAILED')
    assert.match(
      done.error_message,
      new RegExp(
        `^the backup script exited but a process outside its process group \\(pid ${pid}\\) kept BACKUP_STREAM open for ${GRACE_S} s; .*the backup is incomplete$`,
      ),
    )
    assert.ok(elapsed < GRACE_S + SLACK_S, `ended within the grace and a few seconds (${elapsed} s)`)
    assert.equal(running(pid), true, 'a process outside the group is left alone')
    assert.deepEqual(objectsOf(database), [])
    await assertCleanupAndUnlock(agent, id, database)
    process.kill(pid, 'SIGKILL')
  })

  for (const variant of [
    { name: 'held', what: 'a background child holding RESTORE_STREAM is stopped', inGroup: true },
    { name: 'escaped', what: 'a reader outside the process group cannot keep the job waiting', inGroup: false },
  ]) {
    it(`restore: ${variant.what} after the grace and the job fails, naming RESTORE_STREAM`, async () => {
      assert.ok(plainObject, 'the streamed backup of the first test succeeded')
      const database = `${variant.name}_${Date.now()}`
      const id = managerId()
      const started = Date.now()
      await agent.request('PUT', '/restore', managerRestoreBody(id, { ...destination, filename: plainObject }, { database }))
      const pid = await holderPid(database)
      const done = await agent.waitFor('restore', id, 30_000)
      const elapsed = (Date.now() - started) / 1000
      assert.equal(done.status, 'FAILED')
      if (variant.inGroup) {
        assert.equal(
          done.error_message,
          `the restore script exited but a process it started (pid ${pid}) kept RESTORE_STREAM open for ${GRACE_S} s; it was stopped and the restore is incomplete`,
        )
      } else {
        assert.match(
          done.error_message,
          new RegExp(
            `^the restore script exited but a process outside its process group \\(pid ${pid}\\) kept RESTORE_STREAM open for ${GRACE_S} s; .*the restore is incomplete$`,
          ),
        )
      }
      assert.ok(elapsed >= GRACE_S - 0.5, `the grace was waited (${elapsed} s)`)
      assert.ok(elapsed < GRACE_S + SLACK_S, `ended within the grace and a few seconds (${elapsed} s)`)
      assert.equal(
        running(pid),
        !variant.inGroup,
        variant.inGroup ? `holder ${pid} was stopped` : 'a process outside the group is left alone',
      )
      const trace = await agent.trace()
      const cleanup = trace.lastIndexOf(`restore-cleanup ${id}`)
      assert.ok(cleanup >= 0, 'restore-cleanup ran')
      assert.ok(trace.slice(cleanup).includes('post-restore-unlock '), 'post-restore-unlock ran after it')
    })
  }

  it('backup: a process of the script that holds BACKUP_STREAM for reading after the stream ended is stopped and the job fails', async () => {
    const database = `reader_${Date.now()}`
    const { id, started } = await backup(agent, database)
    const pid = await holderPid(database)
    const done = await agent.waitFor('backup', id, 30_000)
    const elapsed = (Date.now() - started) / 1000
    assert.equal(done.status, 'FAILED')
    assert.equal(
      done.error_message,
      `the backup script exited but a process it started (pid ${pid}) still had BACKUP_STREAM open ${GRACE_S} s later, after the stream had ended (a process reading it?); it was stopped and the backup may be incomplete`,
    )
    assert.ok(elapsed < GRACE_S + HOLDER_KILL_GRACE_S + SLACK_S, `ended within the grace and a few seconds (${elapsed} s)`)
    assert.equal(running(pid), false, `holder ${pid} was stopped`)
    await assertCleanupAndUnlock(agent, id, database)
  })

  it('restore: a script that exits 0 while its background process still has RESTORE_STREAM open (all of it in the pipe, unread) fails', async () => {
    const small = `small_${Date.now()}`
    const { id: bid } = await backup(agent, small)
    const stored = await agent.waitFor('backup', bid)
    assert.equal(stored.status, 'SUCCEEDED', stored.error_message)
    const database = `unread_${Date.now()}`
    const id = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(id, { ...destination, filename: stored.filename }, { database }))
    const pid = await holderPid(database)
    const done = await agent.waitFor('restore', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(
      done.error_message,
      `the restore script exited but a process it started (pid ${pid}) still had RESTORE_STREAM open ${GRACE_S} s later, after the stream had ended (a process reading it?); it was stopped and the restore may be incomplete`,
    )
    assert.equal(running(pid), false, `holder ${pid} was stopped`)
    assert.ok((await agent.trace()).includes(`restore-cleanup ${id}`))
  })

  it('cancel during the wait: 202, then FAILED "cancelled" at once, the holder stopped, cleanup and unlock run', async () => {
    const database = `subshell_cancel_${Date.now()}`
    const { id } = await backup(agent, database)
    const pid = await holderPid(database)
    await sleep(1000) // the script has exited: the agent waits for the end of the stream
    const asked = Date.now()
    assert.equal((await agent.request('POST', `/backup/${id}/cancel`)).status, 202)
    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.error_message, 'cancelled')
    assert.ok(Date.now() - asked < (GRACE_S - 1) * 1000, `the cancel ended the wait (${Date.now() - asked} ms), not the grace`)
    assert.equal(running(pid), false)
    assert.deepEqual(objectsOf(database), [])
    await assertCleanupAndUnlock(agent, id, database)
  })

  it('cancel while a restore waits on a held RESTORE_STREAM: FAILED "cancelled" at once, the holder stopped', async () => {
    assert.ok(plainObject, 'the streamed backup of the first test succeeded')
    const database = `held_cancel_${Date.now()}`
    const id = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(id, { ...destination, filename: plainObject }, { database }))
    const pid = await holderPid(database)
    await sleep(1000)
    const asked = Date.now()
    assert.equal((await agent.request('POST', `/restore/${id}/cancel`)).status, 202)
    const done = await agent.waitFor('restore', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.error_message, 'cancelled')
    assert.ok(Date.now() - asked < (GRACE_S - 1) * 1000, `the cancel ended the wait (${Date.now() - asked} ms)`)
    assert.equal(running(pid), false)
    assert.ok((await agent.trace()).includes(`restore-cleanup ${id}`))
  })

  it("a lock script's background process that holds stdout is still left running", async () => {
    const database = `lockholder_${Date.now()}`
    const { id, started } = await backup(agent, database)
    const pid = await holderPid(database)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.ok(Date.now() - started < GRACE_S * 1000, 'stdout is not waited for past its short drain')
    assert.equal(running(pid), true, 'the lock holder keeps running')
    process.kill(pid, 'SIGKILL')
  })

  describe('with a short script timeout', () => {
    let quick: Agent
    before(async () => {
      quick = await startAgent({ env: { local_storage_root: 'objects', script_timeout_seconds: '2' }, scripts: scripts(pids) })
    })
    after(() => quick.stop())

    it('script_timeout_seconds covers the wait for the stream after the script exited', async () => {
      const database = `stubborn_timeout_${Date.now()}`
      const { id, started } = await backup(quick, database)
      const pid = await holderPid(database)
      const done = await quick.waitFor('backup', id, 30_000)
      const elapsed = (Date.now() - started) / 1000
      assert.equal(done.status, 'FAILED')
      assert.equal(done.error_message, 'backup timed out after 2 s')
      assert.ok(elapsed < 2 + HOLDER_KILL_GRACE_S + SLACK_S, `the timeout ended the wait (${elapsed} s)`)
      assert.equal(running(pid), false, 'the holder in the group was stopped (SIGKILL after SIGTERM)')
      await assertCleanupAndUnlock(quick, id, database)
    })
  })

  it('SIGKILL to the agent during the wait: the restarted agent stops what the script left holding the stream, then runs cleanup and unlock', async () => {
    const killed = await startAgent({ env: { local_storage_root: 'objects' }, scripts: scripts(pids) })
    let restarted: Agent | undefined
    try {
      const database = `stubborn_sigkill_${Date.now()}`
      const { id } = await backup(killed, database)
      const pid = await holderPid(database)
      await sleep(1500) // the script has exited: the agent waits for the end of the stream
      await killed.kill('SIGKILL')
      assert.equal(running(pid), true, 'the holder outlived the killed agent')
      restarted = await startAgent(killed.restartOptions())
      const done = await restarted.waitFor('backup', id)
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, /interrupted by agent restart during backup/)
      const deadline = Date.now() + 20_000 // SIGTERM is ignored: SIGKILL after the recovery's grace
      while (running(pid) && Date.now() < deadline) await sleep(200)
      assert.equal(running(pid), false, `holder ${pid} was stopped by the restarted agent`)
      await restarted.waitForOutput(/"job":"[^"]*","kind":"backup","problems":0,"msg":"recovery finished"/, 20_000)
      await assertCleanupAndUnlock(restarted, id, database)
    } finally {
      await restarted?.stop()
      await killed.stop()
    }
  })

  it('SIGTERM to the agent during the wait: the job is cancelled and recorded, the agent exits promptly', async () => {
    const stopping = await startAgent({ env: { local_storage_root: 'objects', shutdown_grace_seconds: '0' }, scripts: scripts(pids) })
    try {
      const database = `escaped_shutdown_${Date.now()}`
      const { id } = await backup(stopping, database)
      const pid = await holderPid(database)
      await sleep(1000) // in the wait for the stream
      const asked = Date.now()
      const code = await stopping.kill('SIGTERM')
      const took = Date.now() - asked
      assert.equal(code, 0)
      assert.ok(took < (GRACE_S - 1) * 1000, `the agent stopped in ${took} ms, not after the grace`)
      assert.match(stopping.output(), new RegExp(`"job":"${id}".*"status":"FAILED".*cancelled: the agent was stopped \\(SIGTERM\\)`))
      const trace = await stopping.trace()
      assert.ok(trace.includes(`post-backup-unlock ${database}`), 'unlock ran before the agent exited')
      process.kill(pid, 'SIGKILL')
    } finally {
      await stopping.stop()
    }
  })
})
