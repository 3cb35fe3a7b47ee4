// The osb-backup-agent CLI against a real agent process: exit codes, --json, progress, --help.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { runCli } from '../helpers/cli.ts'

const failOn = (stage: string) => `if [ "$fail" = "${stage}" ]; then echo "${stage} failing" >&2; exit 3; fi`

describe('osb-backup-agent CLI', () => {
  let agent: Agent
  let env: Record<string, string>
  before(async () => {
    agent = await startAgent({
      env: { local_storage_root: 'objects' },
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
    // not a terminal: one progress line per stage change on stderr (a transfer's bytes after the stage)
    assert.match(restore.stderr, /\[[#-]+\] \d\/\d [a-z-]+( [^\n]+)?\n/)
    assert.match(restore.stderr, /SUCCEEDED/)
  })

  /** A LOCAL backup under `prefix`, waited for: its polling body. */
  async function backedUp(prefix: string): Promise<Record<string, any>> {
    const id = `cli-${prefix.replace('/', '')}-${Date.now()}`
    const run = await runCli(['backup', '--id', id, '--prefix', prefix, '--wait', '--json', '--interval', '0.1'], { env })
    assert.equal(run.code, 0, run.stderr)
    return { id, ...JSON.parse(run.stdout) }
  }

  it('verify --wait reads a LOCAL backup back: exit 0, says verified; status and list find the verify job', async () => {
    const backup = await backedUp('verify-ok/')
    const run = await runCli(
      ['verify', '--prefix', 'verify-ok/', '--filename', backup.filename, '--id', 'cli-verify-ok', '--wait', '--interval', '0.1'],
      { env },
    )
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^verify SUCCEEDED: verify successfully carried out$/m)
    assert.match(run.stdout, new RegExp(`^verified: ${backup.filesize.size} bytes read, SHA-256 ${backup.checksum.value} matches$`, 'm'))
    assert.match(run.stderr, /^verify cli-verify-ok \[#+\] SUCCEEDED$/m)
    // no --kind: found among the verify jobs
    const status = await runCli(['status', 'cli-verify-ok', '--json'], { env })
    assert.equal(status.code, 0, status.stderr)
    assert.equal(JSON.parse(status.stdout).checksum_verified, true)
    const listed = await runCli(['list', '--kind', 'verify', '--json'], { env })
    assert.ok(JSON.parse(listed.stdout).jobs.some((j: { id: string }) => j.id === 'cli-verify-ok'))
  })

  it('verify --wait of a damaged object: exit 1, the checksum mismatch and which check failed', async () => {
    const backup = await backedUp('verify-bad/')
    const file = join(agent.root, 'objects', 'verify-bad', backup.filename)
    const bytes = await readFile(file)
    bytes[0] = (bytes[0] as number) ^ 0x20
    await writeFile(file, bytes)
    const run = await runCli(['verify', '--prefix', 'verify-bad/', '--filename', backup.filename, '--wait', '--interval', '0.1'], { env })
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stdout, /^verify FAILED: verify failed$/m)
    assert.match(run.stdout, /^error: checksum mismatch: /m)
    assert.match(run.stdout, /^failed check: checksum$/m)
    assert.doesNotMatch(run.stdout, /^verified/m)
  })

  it('verify --newest picks the newest SUCCEEDED backup, and its prefix', async () => {
    // same minute, same file name: only the prefix tells them apart
    await backedUp('newest-a/')
    const newest = await backedUp('newest-b/')
    // a later backup that failed is not the newest to verify
    const failed = await runCli(['backup', '--prefix', 'newest-c/', '--param', 'fail=backup', '--wait', '--interval', '0.1'], { env })
    assert.equal(failed.code, 1)
    const run = await runCli(['verify', '--newest', '--wait', '--interval', '0.1'], { env })
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, new RegExp(`^verifying ${newest.filename}, the newest LOCAL backup \\(${newest.id}\\)$`, 'm'))
    assert.match(run.stdout, /^verified: /m)
    assert.match(run.stdout, new RegExp(`^destination: LOCAL newest-b/\nfile: ${newest.filename} `, 'm'))
    // another type: none of this agent's backups went there
    const none = await runCli(['verify', '--newest', '--type', 'S3', '--bucket', 'b', '--auth-key', 'k'], { env })
    assert.equal(none.code, 1)
    assert.match(none.stderr, /no SUCCEEDED S3 backup/)
  })

  it("the example timer's service line runs as written (LOCAL: no destination flags)", async () => {
    const unit = await readFile(new URL('../../examples/systemd/osb-verify-newest.service', import.meta.url), 'utf8')
    const execStart = /^ExecStart=(\S+) (.*)$/m.exec(unit)
    assert.ok(execStart, 'an ExecStart line')
    assert.match(execStart[1] as string, /\/bin\/osb-backup-agent$/)
    // what systemd hands over: %d the credentials directory, $OSB_VERIFY_FLAGS split into words
    const credentials = join(agent.root, 'credentials-for-unit')
    await writeFile(credentials, `client_username=${agent.username}\nclient_password=${agent.password}\n`, { mode: 0o600 })
    const args = (execStart[2] as string)
      .replace('%d/agent.env', credentials)
      .split(' ')
      .filter((word) => word !== '$OSB_VERIFY_FLAGS')
    assert.deepEqual(args.slice(0, 3), ['verify', '--newest', '--wait'])
    // polled quicker than the unit's 30 s: the last --interval wins
    const run = await runCli([...args, '--interval', '0.1'], { env: { OSB_AGENT_URL: agent.url } })
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /^verified: /m)
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
    assert.equal((await runCli(['verify'], { env })).code, 2, 'verify without --filename or --newest')
    assert.equal((await runCli(['verify', '--newest', '--filename', 'x'], { env })).code, 2)
    assert.equal((await runCli(['status', 'x', '--kind', 'nope'], { env })).code, 2)
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
    for (const command of ['serve', 'backup', 'restore', 'verify', 'status', 'wait', 'list', 'cancel', 'decrypt']) {
      assert.match(overview.stdout, new RegExp(`^  ${command} `, 'm'))
      const help = await runCli([command, '--help'])
      assert.equal(help.code, 0, command)
      assert.match(help.stdout, new RegExp(`^osb-backup-agent ${command}`), command)
    }
  })
})
