// Durability (issue 4): records survive restarts, a killed agent leaves nothing locked, hung
// scripts and stalled storage are bounded, jobs can be cancelled, shutdown is graceful.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { BACKUP_STAGES, RESTORE_STAGES, startAgent, type Agent, type AgentOptions } from '../helpers/agent.ts'
import { DB_PASSWORD, ENCRYPTION_KEY, managerBackupBody, managerId, managerRestoreBody, s3Destination } from '../helpers/bodies.ts'
import { startFaultyProxy } from '../helpers/faulty-proxy.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

const skip = { type: 'S3', skipStorage: true, bucket: 'b', authKey: 'k', authSecret: 'durable-secret-K2', filenamePrefix: '' }

/** Every stage sleeps when the parameter SLEEP_IN names it; the backup writes a small dump. */
function sleepyScripts(extra: Record<string, string> = {}): Record<string, string> {
  const scripts: Record<string, string> = {}
  for (const stage of [...BACKUP_STAGES, ...RESTORE_STAGES]) {
    scripts[stage] = `if [ "$sleep_in" = "${stage}" ]; then sleep "\${sleep_secs:-30}"; fi`
  }
  scripts.backup += '\nhead -c "$(( ${size_mib:-0} * 1048576 + 16 ))" /dev/urandom > "$5.dump"'
  return { ...scripts, ...extra }
}

/** Waits until the job is in `state` and that stage's script is running (it traced its start). */
async function waitForState(agent: Agent, kind: 'backup' | 'restore', id: string, state: string): Promise<void> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const body = (await agent.request('GET', `/${kind}/${id}`)).json()
    if (body.state === state && (await agent.stagesRun(id)).includes(state)) return
    assert.ok(body.status === 'RUNNING', `${kind} ${id} ended before reaching ${state}: ${JSON.stringify(body)}`)
    assert.ok(Date.now() < deadline, `${kind} ${id} never reached ${state} (at ${body.state})`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Waits until the job's recovery has run the stages it owed (the record stops changing). */
async function waitForStages(agent: Agent, tag: string, expected: string[]): Promise<string[]> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const ran = await agent.stagesRun(tag)
    if (ran.length >= expected.length || Date.now() > deadline) return ran
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('a killed agent', () => {
  let agent: Agent
  let options: AgentOptions
  let finishedId: string
  let finishedBody: string
  before(async () => {
    agent = await startAgent({ scripts: sleepyScripts() })
    finishedId = managerId()
    await agent.request('POST', '/backup', managerBackupBody(finishedId, skip))
    await agent.waitFor('backup', finishedId)
    finishedBody = (await agent.request('GET', `/backup/${finishedId}`)).text
    options = agent.restartOptions()
  })
  after(async () => {
    agent.assertNoSecrets([DB_PASSWORD, ENCRYPTION_KEY, 'durable-secret-K2'])
    await agent.stop()
  })

  const cases: ['backup' | 'restore', string, string[]][] = [
    ['backup', 'pre-backup-lock', ['pre-backup-lock', 'post-backup-unlock']],
    ['backup', 'pre-backup-check', ['pre-backup-lock', 'pre-backup-check', 'post-backup-unlock']],
    ['backup', 'backup', ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']],
    ['backup', 'backup-cleanup', ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']],
    ['backup', 'post-backup-unlock', BACKUP_STAGES],
    ['restore', 'pre-restore-lock', ['pre-restore-lock', 'post-restore-unlock']],
    ['restore', 'restore', RESTORE_STAGES],
    ['restore', 'restore-cleanup', RESTORE_STAGES],
    ['restore', 'post-restore-unlock', RESTORE_STAGES],
  ]
  for (const [kind, stage, expected] of cases) {
    it(`during ${stage}: the job reads FAILED after the restart, cleanup and unlock run exactly once`, async () => {
      const id = managerId()
      // hooks that are left running finish on their own (short sleep); main stages are stopped
      const parameters = { job: id, sleep_in: stage, sleep_secs: /cleanup|unlock/.test(stage) ? 1 : 30 }
      const body = kind === 'backup' ? managerBackupBody(id, skip, { parameters }) : managerRestoreBody(id, skip, { parameters })
      assert.equal((await agent.request(kind === 'backup' ? 'POST' : 'PUT', `/${kind}`, body)).status, 201)
      await waitForState(agent, kind, id, stage)
      await agent.kill('SIGKILL')
      const output = agent.output()
      agent = await startAgent(options)

      const after = (await agent.request('GET', `/${kind}/${id}`)).json()
      assert.equal(after.status, 'FAILED')
      assert.equal(after.state, 'finished')
      assert.match(after.error_message, new RegExp(`^interrupted by agent restart during ${stage}`))
      assert.match(after.end_time, /\+00:00$/)
      const metrics = (await agent.request('GET', '/metrics')).text
      assert.match(metrics, new RegExp(`^osb_backup_agent_job_failures_total\\{kind="${kind}",reason="interrupted"\\} 1$`, 'm'))
      const ran = await waitForStages(agent, id, expected)
      assert.deepEqual(ran, expected)
      await new Promise((r) => setTimeout(r, 300))
      assert.deepEqual(await agent.stagesRun(id), expected, 'nothing ran twice')
      // the record of another job is intact, byte for byte
      assert.equal((await agent.request('GET', `/backup/${finishedId}`)).text, finishedBody)
      // new jobs are accepted (the slot of the interrupted job is free)
      const next = managerId()
      assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip))).status, 201)
      assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
      assert.ok(!output.includes('durable-secret-K2'))
    })
  }

  it('keeps the interruption message and the unlock output in the stored body across a second restart', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, sleep_in: 'backup' } }))
    await waitForState(agent, 'backup', id, 'backup')
    await agent.kill('SIGKILL')
    agent = await startAgent(options)
    await waitForStages(agent, id, ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'])
    await new Promise((r) => setTimeout(r, 300))
    const first = (await agent.request('GET', `/backup/${id}`)).text
    await agent.kill('SIGTERM')
    agent = await startAgent(options)
    assert.equal((await agent.request('GET', `/backup/${id}`)).text, first)
  })
})

describe('timeouts and cancel', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({
      env: { hook_timeout_seconds: '1', script_timeout_seconds: '2' },
      scripts: sleepyScripts({
        backup: 'if [ "$stubborn" = 1 ]; then trap "" TERM; fi\nif [ "$sleep_in" = backup ]; then sleep 1000; fi\necho x > "$5.dump"',
      }),
    })
  })
  after(async () => {
    agent.assertNoSecrets([DB_PASSWORD, ENCRYPTION_KEY, 'durable-secret-K2'])
    await agent.stop()
  })

  it('a hook that sleeps forever ends at hook_timeout_seconds; unlock still runs', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, skip, { parameters: { job: id, sleep_in: 'pre-backup-check', sleep_secs: 1000 } }),
    )
    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.error_message, 'pre-backup-check timed out after 1 s')
    assert.deepEqual(await agent.stagesRun(id), ['pre-backup-lock', 'pre-backup-check', 'post-backup-unlock'])
  })

  it('a backup script that ignores SIGTERM is killed after its timeout and the grace period', async () => {
    const id = managerId()
    const started = Date.now()
    await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, sleep_in: 'backup', stubborn: 1 } }))
    const done = await agent.waitFor('backup', id, 60_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.error_message, 'backup timed out after 2 s')
    assert.ok(Date.now() - started < 30_000)
    assert.deepEqual(await agent.stagesRun(id), BACKUP_STAGES)
  })

  for (const stage of ['pre-backup-lock', 'backup']) {
    it(`cancel during ${stage}: 202, FAILED "cancelled", cleanup and unlock as due`, async () => {
      const id = managerId()
      await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, sleep_in: stage, sleep_secs: 1000 } }))
      await waitForState(agent, 'backup', id, stage)
      const res = await agent.request('POST', `/backup/${id}/cancel`)
      assert.equal(res.status, 202)
      assert.ok(res.json().message)
      const done = await agent.waitFor('backup', id, 30_000)
      assert.equal(done.status, 'FAILED')
      assert.equal(done.error_message, 'cancelled')
      const expected =
        stage === 'backup'
          ? ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
          : ['pre-backup-lock', 'post-backup-unlock']
      assert.deepEqual(await agent.stagesRun(id), expected)
      assert.equal((await agent.request('POST', `/backup/${id}/cancel`)).status, 409)
    })
  }

  it('cancel during a restore stage, 404 for an unknown job, 400 for an invalid id', async () => {
    const id = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(id, skip, { parameters: { job: id, sleep_in: 'restore', sleep_secs: 1000 } }))
    await waitForState(agent, 'restore', id, 'restore')
    assert.equal((await agent.request('POST', `/restore/${id}/cancel`)).status, 202)
    const done = await agent.waitFor('restore', id, 30_000)
    assert.equal(done.error_message, 'cancelled')
    assert.deepEqual(await agent.stagesRun(id), RESTORE_STAGES)
    assert.equal((await agent.request('POST', '/restore/nope/cancel')).status, 404)
    assert.equal((await agent.request('POST', '/backup/../cancel')).status, 400, 'a traversal id is no job')
  })
})

describe('graceful shutdown and retention', () => {
  it('SIGTERM: new jobs get 503, polls are answered, running jobs are cancelled after the grace and recorded', async () => {
    let agent = await startAgent({ env: { shutdown_grace_seconds: '1' }, scripts: sleepyScripts() })
    const options = agent.restartOptions()
    try {
      const id = managerId()
      await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, sleep_in: 'backup', sleep_secs: 1000 } }))
      await waitForState(agent, 'backup', id, 'backup')
      const exited = agent.kill('SIGTERM')
      await new Promise((r) => setTimeout(r, 200))
      const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
      assert.equal(refused.status, 503)
      assert.ok(refused.json().message)
      assert.equal((await agent.request('GET', `/backup/${id}`)).status, 200)
      assert.equal(await exited, 0)
      agent = await startAgent(options)
      const done = (await agent.request('GET', `/backup/${id}`)).json()
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, /^cancelled: the agent was stopped \(SIGTERM\)/)
      assert.deepEqual(await agent.stagesRun(id), ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'])
    } finally {
      await agent.stop()
    }
  })

  it('keeps at most max_job_records finished jobs, dropping the oldest', async () => {
    const agent = await startAgent({ env: { max_job_records: '3' } })
    try {
      const ids: string[] = []
      for (let i = 0; i < 5; i++) {
        const id = managerId()
        ids.push(id)
        await agent.request('POST', '/backup', managerBackupBody(id, skip))
        await agent.waitFor('backup', id)
      }
      const statuses = await Promise.all(ids.map(async (id) => (await agent.request('GET', `/backup/${id}`)).status))
      assert.deepEqual(statuses, [404, 404, 200, 200, 200])
    } finally {
      await agent.stop()
    }
  })
})

describe('storage outages', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-outage')
  let agent: Agent
  before(async () => {
    await s3.createBucket(bucket)
    agent = await startAgent({ env: { storage_retries: '3' }, scripts: sleepyScripts() })
  })
  after(async () => {
    agent.assertNoSecrets([DB_PASSWORD, ENCRYPTION_KEY, s3.secretKey])
    await agent.stop()
  })

  it('retries connections cut mid-upload and succeeds; the restore reads the same bytes', async () => {
    const proxy = await startFaultyProxy(Number(new URL(s3.endpoint).port), { kind: 'cut', afterBytes: 3 * 1048576, times: 2 })
    try {
      const target = { hostPort: proxy.hostPort, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket }
      const id = managerId()
      await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { parameters: { size_mib: 20 } }))
      const done = await agent.waitFor('backup', id, 120_000)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      assert.equal(proxy.faults(), 2)
      assert.ok(done.attempts >= 5, `attempts ${done.attempts}: create + 3 parts + complete + 2 retries`)
      const stored = await s3.headObject(bucket, `backups/${done.filename}`)
      assert.equal(stored.ContentLength, done.filesize.size)

      proxy.setFault({ kind: 'cut', afterBytes: 200, times: 1 })
      const rid = managerId()
      await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename: done.filename })))
      const restored = await agent.waitFor('restore', rid, 60_000)
      assert.equal(restored.status, 'SUCCEEDED', restored.error_message)
      assert.equal(restored.filesize.size, done.filesize.size)
    } finally {
      await proxy.close()
    }
  })

  it('fails after the retries with a clear message when the outage is permanent; unlock runs', async () => {
    const proxy = await startFaultyProxy(Number(new URL(s3.endpoint).port), { kind: 'cut-all', afterBytes: 100 })
    try {
      const id = managerId()
      const target = { hostPort: proxy.hostPort, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket }
      await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target), { parameters: { job: id } }))
      const done = await agent.waitFor('backup', id, 120_000)
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, /upload of backups\/.* failed: cannot reach the S3 endpoint/)
      assert.equal(done.attempts, 4, 'the first try and 3 retries')
      assert.deepEqual(await agent.stagesRun(id), BACKUP_STAGES)
    } finally {
      await proxy.close()
    }
  })
})
