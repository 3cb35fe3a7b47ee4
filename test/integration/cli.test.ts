// The osb-backup-agent CLI against a real agent process: exit codes, --json, progress, --help.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { runCli } from '../helpers/cli.ts'

const failOn = (stage: string) => `if [ "$fail" = "${stage}" ]; then echo "${stage} failing" >&2; exit 3; fi`

describe('osb-backup-agent CLI', () => {
  let agent: Agent
  let env: Record<string, string>
  before(async () => {
    agent = await startAgent({
      scripts: { backup: `${failOn('backup')}; sleep "\${sleep:-0}"; echo "rows" > "$5.sql"`, restore: 'cat "$5"' },
    })
    env = { OSB_AGENT_URL: agent.url, OSB_AGENT_USERNAME: agent.username, OSB_AGENT_PASSWORD: agent.password }
  })
  after(async () => {
    agent.assertNoSecrets(['db-secret-C4'])
    await agent.stop()
  })

  it('backs up and restores through LOCAL; --json output parses; wait exits 0', async () => {
    const started = await runCli(['backup', '--json', '--prefix', 'cli/', '--database', 'shop', '--param', 'sleep=0.3'], {
      env: { ...env, OSB_DB_PASSWORD: 'db-secret-C4' },
    })
    assert.equal(started.code, 0, started.stderr)
    const { id, kind } = JSON.parse(started.stdout)
    assert.equal(kind, 'backup')
    const waited = await runCli(['wait', id, '--json', '--interval', '0.1'], { env })
    assert.equal(waited.code, 0, waited.stderr)
    const body = JSON.parse(waited.stdout)
    assert.equal(body.status, 'SUCCEEDED')
    assert.equal(body.filenamePrefix, 'cli/')

    const status = await runCli(['status', id, '--json'], { env })
    assert.equal(JSON.parse(status.stdout).filename, body.filename)
    const listed = await runCli(['list', '--json', '--status', 'SUCCEEDED'], { env })
    assert.ok(JSON.parse(listed.stdout).jobs.some((j: { id: string }) => j.id === id))

    const restore = await runCli(['restore', '--prefix', 'cli/', '--filename', body.filename, '--wait', '--interval', '0.1'], { env })
    assert.equal(restore.code, 0, restore.stderr)
    assert.match(restore.stdout, /restore SUCCEEDED/)
    // not a terminal: one progress line per stage change on stderr
    assert.match(restore.stderr, /\[[#-]+\] \d\/\d [a-z-]+\n/)
    assert.match(restore.stderr, /SUCCEEDED/)
  })

  it('wait on a failing job exits 1 and says why', async () => {
    const started = await runCli(['backup', '--json', '--param', 'fail=backup'], { env })
    const { id } = JSON.parse(started.stdout)
    const waited = await runCli(['wait', id, '--interval', '0.1'], { env })
    assert.equal(waited.code, 1)
    assert.match(waited.stdout, /backup FAILED/)
    assert.match(waited.stdout, /^error: .*backup/m)
    assert.match(waited.stderr, /\] FAILED/)
  })

  it('cancels a running job', async () => {
    const started = await runCli(['backup', '--json', '--param', 'sleep=30'], { env })
    const { id } = JSON.parse(started.stdout)
    const cancelled = await runCli(['cancel', id], { env })
    assert.equal(cancelled.code, 0, cancelled.stderr)
    const waited = await runCli(['wait', id, '--json', '--interval', '0.1'], { env })
    assert.equal(waited.code, 1)
    assert.equal(JSON.parse(waited.stdout).error_message, 'cancelled')
  })

  it('exit codes: 2 for wrong usage, 3 for a refused login or no agent', async () => {
    assert.equal((await runCli(['frobnicate'], { env })).code, 2)
    assert.equal((await runCli(['status'], { env })).code, 2)
    assert.equal((await runCli(['list', '--no-such-flag'], { env })).code, 2)
    assert.equal((await runCli(['restore'], { env })).code, 2, 'restore without --filename')
    const refused = await runCli(['list'], { env: { ...env, OSB_AGENT_PASSWORD: 'wrong' } })
    assert.equal(refused.code, 3)
    assert.match(refused.stderr, /refused the credentials from OSB_AGENT_USERNAME/)
    assert.ok(!refused.stderr.includes('wrong'))
    const unreachable = await runCli(['list'], { env: { ...env, OSB_AGENT_URL: 'http://127.0.0.1:1' } })
    assert.equal(unreachable.code, 3)
    assert.equal((await runCli(['status', 'nope'], { env })).code, 1)
  })

  it('has --help for every command', async () => {
    const overview = await runCli(['--help'])
    assert.equal(overview.code, 0)
    for (const command of ['serve', 'backup', 'restore', 'status', 'wait', 'list', 'cancel']) {
      assert.match(overview.stdout, new RegExp(`^  ${command} `, 'm'))
      const help = await runCli([command, '--help'])
      assert.equal(help.code, 0, command)
      assert.match(help.stdout, new RegExp(`^osb-backup-agent ${command}`), command)
    }
  })
})
