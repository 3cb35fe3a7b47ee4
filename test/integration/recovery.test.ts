// Crash during recovery (issue 14, item 3): a second SIGKILL while recovery waits for an orphaned
// cleanup or runs the unlock script loses no owed step; until the steps have run the id can be
// neither deleted nor reused; a SIGTERM while recovery runs waits for it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKUP_STAGES, RESTORE_STAGES, startAgent, type Agent, type AgentOptions } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

/** Longer than the agent takes to store a started script's pid, even on a loaded machine. */
const RECORD_SETTLE_MS = 500

const skip = { type: 'S3', skipStorage: true, bucket: 'b', authKey: 'k', authSecret: 'recovery-secret-Q7', filenamePrefix: '' }

/**
 * Each stage records `<tag> <stage> start` and `<tag> <stage> end` in `steps` (an end means the
 * script ran to its end) and sleeps `sleep_secs` when `sleep_in` (a space-separated list) names it.
 */
function stepScripts(steps: string): Record<string, string> {
  const scripts: Record<string, string> = {}
  for (const stage of [...BACKUP_STAGES, ...RESTORE_STAGES]) {
    scripts[stage] = [
      `if [ -n "$tag" ]; then printf '%s\\n' "$tag ${stage} start" >> '${steps}'; fi`,
      `if [[ " $sleep_in " == *" ${stage} "* ]]; then sleep "\${sleep_secs:-30}"; fi`,
      // replace_in: the stage replaces its working directory (the job directory) with a file or a link
      `if [[ " $replace_in " == *" ${stage} "* ]]; then p=$PWD; cd /; rm -rf "$p"; if [ "$replace_with" = file ]; then echo x > "$p"; else ln -s /nonexistent/dir "$p"; fi; fi`,
      `if [ -n "$tag" ]; then printf '%s\\n' "$tag ${stage} end" >> '${steps}'; fi`,
      // lengths only: what a recovered script got of the sealed secrets
      `if [ -n "$tag" ] && [ -n "$count_secrets" ]; then printf '%s\\n' "$tag ${stage} secrets \${#api_token} \${#S3_AUTHSECRET}" >> '${steps}'; fi`,
      `echo '${stage} ran'`,
    ].join('\n')
  }
  return scripts
}

describe('a crash during recovery', () => {
  let dir: string
  let steps: string
  let agent: Agent
  let options: AgentOptions
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-recovery-'))
    steps = join(dir, 'steps.log')
    agent = await startAgent({ scripts: stepScripts(steps), env: { hook_timeout_seconds: '60' } })
    options = agent.restartOptions()
  })
  after(async () => {
    agent.assertNoSecrets(['recovery-secret-Q7'])
    await agent.stop()
    await rm(dir, { recursive: true, force: true })
  })

  /** The lines the job's scripts recorded, without the tag. */
  const stepsOf = async (id: string) =>
    (await readFile(steps, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.startsWith(`${id} `))
      .map((l) => l.slice(id.length + 1))
  const count = async (id: string, line: string) => (await stepsOf(id)).filter((l) => l === line).length

  async function waitForStep(id: string, line: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await stepsOf(id)).includes(line)) {
      assert.ok(
        Date.now() < deadline,
        `no "${line}" for ${id} within ${timeoutMs} ms: ${JSON.stringify(await stepsOf(id))}\n${agent.output().slice(-3000)}`,
      )
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  /** DELETE answers 409 while recovery owes steps; this waits until it does not (and deletes). */
  async function deleteOnceNothingOwed(id: string): Promise<void> {
    const deadline = Date.now() + 20_000
    for (;;) {
      const res = await agent.request('DELETE', '/backup', { id })
      if (res.status === 200) return
      assert.equal(res.status, 409, res.text)
      assert.ok(Date.now() < deadline, `${id} still owes steps: ${res.text}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async function trigger(id: string, parameters: Record<string, string | number>): Promise<void> {
    const res = await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { tag: id, ...parameters } }))
    assert.equal(res.status, 201, res.text)
  }

  /**
   * SIGKILL once the agent has recorded the script that just wrote its `start` line: the agent
   * stores the script's pid a moment after starting it, and a kill in between runs the step again
   * (at least once, docs/DURABILITY.md), where these tests count exactly once.
   */
  async function killOnceScriptRecorded(): Promise<void> {
    await new Promise((r) => setTimeout(r, RECORD_SETTLE_MS))
    await agent.kill('SIGKILL')
  }

  /** A backup killed during its backup script; the restarted agent is left running its recovery's unlock. */
  async function killDuringBackupThenRecoverToUnlock(id: string, unlockSecs: number): Promise<void> {
    await trigger(id, { sleep_in: 'backup post-backup-unlock', sleep_secs: unlockSecs })
    await waitForStep(id, 'backup start')
    await killOnceScriptRecorded()
    agent = await startAgent(options)
    await waitForStep(id, 'post-backup-unlock start')
  }

  it('killed again while recovery waits for the orphaned cleanup: the cleanup ends on its own, unlock runs once, then the id is free', async () => {
    const id = managerId()
    await trigger(id, { sleep_in: 'backup-cleanup', sleep_secs: 6 })
    await waitForStep(id, 'backup-cleanup start')
    await killOnceScriptRecorded()

    agent = await startAgent(options)
    await agent.waitForOutput(new RegExp(`"job":"${id}".*"msg":"waiting for the interrupted script"`), 10_000)
    // owed: the id is neither deleted nor reused, and a trigger sees the old job
    const refused = await agent.request('DELETE', '/backup', { id })
    assert.equal(refused.status, 409)
    assert.equal(refused.json().status, 'FAILED')
    const again = await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { tag: id } }))
    assert.equal(again.status, 409)
    assert.match(again.json().error_message, /^interrupted by agent restart during backup-cleanup/)
    await agent.kill('SIGKILL')

    agent = await startAgent(options)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 409, 'still owed after the second crash')
    await waitForStep(id, 'post-backup-unlock end')
    const body = (await agent.request('GET', `/backup/${id}`)).json()
    assert.equal(body.status, 'FAILED')
    assert.equal(body.state, 'finished')
    assert.match(body.error_message, /^interrupted by agent restart during backup-cleanup/)
    await deleteOnceNothingOwed(id)
    assert.deepEqual(
      await stepsOf(id),
      [
        'pre-backup-lock start',
        'pre-backup-lock end',
        'pre-backup-check start',
        'pre-backup-check end',
        'backup start',
        'backup end',
        'backup-cleanup start',
        'backup-cleanup end',
        'post-backup-unlock start',
        'post-backup-unlock end',
      ],
      'every step once: the orphan was waited for, not run again',
    )

    // the id is free now; the new job is a new job
    await trigger(id, {})
    const fresh = await agent.waitFor('backup', id)
    assert.equal(fresh.status, 'SUCCEEDED', fresh.error_message)
    assert.equal(fresh.error_message, undefined)
    assert.equal(await count(id, 'post-backup-unlock start'), 2, "the old unlock once, the new job's once")
  })

  it('killed again while recovery runs the unlock script: the unlock is waited for and not lost', async () => {
    const id = managerId()
    await killDuringBackupThenRecoverToUnlock(id, 4)
    await killOnceScriptRecorded()

    agent = await startAgent(options)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 409)
    await waitForStep(id, 'post-backup-unlock end')
    await deleteOnceNothingOwed(id)
    assert.equal(await count(id, 'backup-cleanup end'), 1)
    assert.ok((await count(id, 'post-backup-unlock end')) >= 1, 'unlock ran to its end at least once')
    assert.equal(await count(id, 'post-backup-unlock start'), 1, 'exactly once: the store could be written')
  })

  it('the body the second crash left keeps what the first recovery did, and survives a later restart byte for byte', async () => {
    const id = managerId()
    await killDuringBackupThenRecoverToUnlock(id, 3)
    await killOnceScriptRecorded()

    agent = await startAgent(options)
    const early = (await agent.request('GET', `/backup/${id}`)).json()
    assert.equal(early.status, 'FAILED')
    assert.match(early.error_message, /^interrupted by agent restart during backup/)
    assert.equal(early.backup_cleanup_log, 'backup-cleanup ran\n', 'the cleanup the first recovery ran was stored')
    await agent.waitForOutput(new RegExp(`"job":"${id}".*"msg":"recovery finished"`), 20_000)
    const settled = (await agent.request('GET', `/backup/${id}`)).text
    await agent.kill('SIGTERM')
    agent = await startAgent(options)
    assert.equal((await agent.request('GET', `/backup/${id}`)).text, settled)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 200, 'nothing owed')
    assert.equal(await count(id, 'post-backup-unlock start'), 1, 'nothing ran again after the restarts')
    assert.equal(await count(id, 'post-backup-unlock end'), 1)
  })

  it('SIGTERM while recovery runs the unlock script: the agent waits for it, exits 0, and nothing is owed after', async () => {
    const id = managerId()
    await killDuringBackupThenRecoverToUnlock(id, 3)
    assert.equal(await agent.kill('SIGTERM'), 0)
    assert.equal(await count(id, 'post-backup-unlock end'), 1, 'the unlock ended before the agent did')

    agent = await startAgent(options)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 200, 'nothing owed')
    assert.equal(await count(id, 'post-backup-unlock start'), 1)
  })

  for (const replaceWith of ['file', 'link']) {
    it(`a cleanup script that replaces the job directory with a ${replaceWith}: unlock still runs, also in recovery after a crash`, async () => {
      const id = managerId()
      await trigger(id, { replace_in: 'backup-cleanup', replace_with: replaceWith })
      const done = await agent.waitFor('backup', id)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      assert.equal(await count(id, 'post-backup-unlock end'), 1)
      assert.ok((await agent.request('DELETE', '/backup', { id })).status === 200)

      const crashed = managerId()
      await trigger(crashed, { sleep_in: 'backup-cleanup', sleep_secs: 2, replace_in: 'backup-cleanup', replace_with: replaceWith })
      await waitForStep(crashed, 'backup-cleanup start')
      await killOnceScriptRecorded()
      agent = await startAgent(options)
      await waitForStep(crashed, 'post-backup-unlock end')
      await deleteOnceNothingOwed(crashed)
      assert.match((await agent.request('GET', `/backup/${crashed}`)).text, /^$/)
      assert.equal(await count(crashed, 'backup-cleanup end'), 1)
      assert.equal(await count(crashed, 'post-backup-unlock start'), 1)
    })
  }

  it('a crash mid-job leaves no secret as text in the store files; recovery still gives the unlock script the sealed ones', async () => {
    const id = managerId()
    const token = 'api-token-sealed-Zx81'
    await trigger(id, { sleep_in: 'backup', sleep_secs: 30, api_token: token, count_secrets: 1 })
    await waitForStep(id, 'backup start')
    await killOnceScriptRecorded()
    const files = await readdir(join(agent.root, 'state'))
    const stored = Buffer.concat(
      await Promise.all(files.filter((f) => f.startsWith('jobs.sqlite')).map((f) => readFile(join(agent.root, 'state', f)))),
    ).toString('latin1')
    assert.ok(stored.includes(id), "the test reads the store's files")
    for (const secret of [token, skip.authSecret]) {
      for (const form of [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64').slice(0, 16)]) {
        assert.ok(!stored.includes(form), `${form} is in the store after a crash mid-job`)
      }
    }
    agent = await startAgent(options)
    await waitForStep(id, 'post-backup-unlock end')
    assert.ok(
      (await stepsOf(id)).includes(`post-backup-unlock secrets ${token.length} ${skip.authSecret.length}`),
      JSON.stringify(await stepsOf(id)),
    )
    await deleteOnceNothingOwed(id)
  })

  it("a crash during a download: recovery removes the partial download (the agent's own directory) and runs cleanup and unlock", async () => {
    const objects = join(agent.root, 'var', 'storage', 'big')
    await mkdir(objects, { recursive: true })
    await writeFile(join(objects, 'huge.sql'), '')
    await truncate(join(objects, 'huge.sql'), 2 * 1024 ** 3)
    const id = managerId()
    const body = managerRestoreBody(id, { type: 'LOCAL', filenamePrefix: 'big/', filename: 'huge.sql' }, { parameters: { tag: id } })
    assert.equal((await agent.request('PUT', '/restore', body)).status, 201)
    const deadline = Date.now() + 20_000
    for (;;) {
      const polled = (await agent.request('GET', `/restore/${id}`)).json()
      if (polled.state === 'download' && (polled.progress?.bytes_done ?? 0) > 0) break
      assert.ok(polled.status === 'RUNNING' && Date.now() < deadline, JSON.stringify(polled))
      await new Promise((r) => setTimeout(r, 20))
    }
    await agent.kill('SIGKILL')
    const jobDirectory = join(agent.restoreDir, id)
    assert.ok(
      (await readdir(jobDirectory)).some((n) => n.startsWith('.agent-download-')),
      'the crash left the partial download',
    )
    agent = await startAgent(options)
    await waitForStep(id, 'post-restore-unlock end')
    assert.deepEqual(await readdir(jobDirectory), [])
    assert.match((await agent.request('GET', `/restore/${id}`)).json().error_message, /^interrupted by agent restart during download/)
    await rm(join(objects, 'huge.sql'))
  })
})
