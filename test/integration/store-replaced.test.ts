// directory_state removed, or replaced by a symlink to another folder, or the store's WAL file
// removed, while the agent runs.
// SQLite goes on writing to the unlinked files without an error, so without a check every record
// (and the unlock a crash leaves owed) would be gone at the next start. The agent notices within
// seconds, makes the store again at its path and writes every record to it.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { renameSync } from 'node:fs'
import { mkdir, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { BACKUP_STAGES, startAgent } from '../helpers/agent.ts'
import { managerBackupBody, managerId } from '../helpers/bodies.ts'

const skip = { type: 'S3', skipStorage: true, bucket: 'b', authKey: 'k', authSecret: 'replaced-store-secret-Q8', filenamePrefix: '' }

describe('directory_state removed or replaced while the agent runs', () => {
  for (const how of ['removed', 'moved away, a symlink to an empty folder at its name', 'its WAL file removed']) {
    it(`${how}: earlier records survive a SIGKILL, and a job killed mid-stage is recovered (cleanup and unlock run)`, async () => {
      const scripts: Record<string, string> = {}
      for (const s of BACKUP_STAGES) scripts[s] = `if [ "$sleep_in" = "${s}" ]; then sleep "\${secs:-3}"; fi`
      let agent = await startAgent({ scripts })
      try {
        const state = join(agent.root, 'state')
        const earlier = managerId()
        assert.equal(
          (await agent.request('POST', '/backup', managerBackupBody(earlier, skip, { parameters: { job: earlier } }))).status,
          201,
        )
        const earlierBody =
          (await agent.waitFor('backup', earlier)).status === 'SUCCEEDED' && (await agent.request('GET', `/backup/${earlier}`)).text
        const id = managerId()
        assert.equal(
          (await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, sleep_in: 'backup', secs: 30 } })))
            .status,
          201,
        )
        const deadline = Date.now() + 10_000
        while ((await agent.request('GET', `/backup/${id}`)).json().state !== 'backup') {
          assert.ok(Date.now() < deadline, 'the job never reached its backup stage')
          await new Promise((r) => setTimeout(r, 25))
        }
        if (how === 'removed') await rm(state, { recursive: true })
        else if (how === 'its WAL file removed') await rm(join(state, 'jobs.sqlite-wal'))
        else {
          // The symlink is made first and put in place right after the move, with no await in
          // between: a store write in that gap (the job's own, as its script starts running) makes
          // the folder again at once, and the symlink then found its name taken (EEXIST, once in CI).
          await mkdir(join(agent.root, 'elsewhere'), { mode: 0o700 })
          await symlink(join(agent.root, 'elsewhere'), `${state}.new`)
          renameSync(state, `${state}.old`)
          renameSync(`${state}.new`, state)
        }
        // no job changes state now: the periodic check notices
        await agent.waitForOutput(/the job store was removed or replaced while the agent ran/, 10_000)
        const options = agent.restartOptions()
        await agent.kill('SIGKILL')
        agent = await startAgent(options)
        assert.equal((await agent.request('GET', `/backup/${earlier}`)).text, earlierBody, 'the earlier record was written again')
        const interrupted = (await agent.request('GET', `/backup/${id}`)).json()
        assert.equal(interrupted.status, 'FAILED')
        assert.match(interrupted.error_message, /^interrupted by agent restart during backup/)
        const ran = Date.now() + 30_000
        while (!(await agent.stagesRun(id)).includes('post-backup-unlock')) {
          assert.ok(Date.now() < ran, `unlock never ran: ${JSON.stringify(await agent.stagesRun(id))}`)
          await new Promise((r) => setTimeout(r, 50))
        }
        assert.deepEqual(await agent.stagesRun(id), [
          'pre-backup-lock',
          'pre-backup-check',
          'backup',
          'backup-cleanup',
          'post-backup-unlock',
        ])
        const next = managerId()
        assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip, { parameters: { job: next } }))).status, 201)
        assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
      } finally {
        await agent.stop()
      }
    })
  }
})
