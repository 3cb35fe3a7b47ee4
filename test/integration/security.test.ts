// Security controls against a real agent process: login throttling, the script permission check,
// secrets out of argv (script_secret_args=false), file modes and job_group, SIGHUP, and the
// secret audit of the test helper itself.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmod, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import {
  DB_PASSWORD,
  ENCRYPTION_KEY,
  managerBackupBody,
  managerId,
  managerRestoreBody,
  s3Destination,
  skipStorageDestination,
} from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

describe('login throttling', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({ env: { auth_max_failures: '3', auth_throttle_exempt: '127.0.0.3' } })
  })
  after(() => agent.stop())

  it('answers 429 with Retry-After to every request from an address after auth_max_failures failed logins, without checking credentials', async () => {
    const from = '127.0.0.2'
    for (let i = 0; i < 3; i++) {
      const res = await agent.request('GET', '/status', undefined, { from, auth: basic('manager', `wrong-guess-${i}-xyz`) })
      assert.equal(res.status, 401)
    }
    for (const [method, path, auth] of [
      ['GET', '/status', undefined],
      ['GET', '/backup/some-id', undefined],
      ['POST', '/backup', null],
      ['GET', '/status', basic('manager', 'wrong-guess-9-xyz')],
    ] as const) {
      const res = await agent.request(method, path, method === 'POST' ? {} : undefined, { from, auth })
      assert.equal(res.status, 429, `${method} ${path}`)
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
      assert.match(res.json().message, /too many failed logins/)
      const retryAfter = Number(res.headers.get('retry-after'))
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${res.headers.get('retry-after')}`)
    }
    await agent.waitForOutput(/address locked out for a minute/)
    const output = agent.output()
    assert.equal(
      output.split('\n').filter((l) => l.includes('login failed') && l.includes(from)).length,
      3,
      'a locked-out request is not a login attempt',
    )
  })

  it('logs request URLs without the values of their query, also for a failed login', async () => {
    const from = '127.0.0.4'
    const value = 'query-secret-Vq81x'
    const listing = await agent.request('GET', `/backup?access_token=${value}&cursor=${value}#${value}`, undefined, { from })
    assert.equal(listing.status, 400) // unknown query names and a bad cursor, not quoted back
    assert.ok(!listing.text.includes(value), listing.text)
    assert.equal(
      (await agent.request('GET', `/status?password=${value}`, undefined, { from, auth: basic('manager', 'wrong-guess-q-xyz') })).status,
      401,
    )
    await agent.waitForOutput(/"url":"\/status\?password=…"[^\n]*login failed/)
    await agent.waitForOutput(/"url":"\/backup\?access_token=…&cursor=…"/)
    assert.ok(!agent.output().includes(value))
  })

  it('does not lock out other addresses', async () => {
    assert.equal((await agent.request('GET', '/status', undefined, { from: '127.0.0.4' })).status, 200)
    assert.equal((await agent.request('GET', '/status')).status, 200)
  })

  it('never locks out an address in auth_throttle_exempt', async () => {
    for (let i = 0; i < 12; i++) {
      assert.equal(
        (await agent.request('GET', '/status', undefined, { from: '127.0.0.3', auth: basic('manager', `exempt-guess-${i}`) })).status,
        401,
      )
    }
    assert.equal((await agent.request('GET', '/status', undefined, { from: '127.0.0.3' })).status, 200)
  })
})

describe('script permission check', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent()
  })
  after(() => agent.stop())

  const backup = async () => {
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { parameters: { job: id } }))).status,
      201,
    )
    return { done: await agent.waitFor('backup', id), ran: await agent.stagesRun(id) }
  }

  it('refuses (FAILED, clear message) to run a group- or world-writable script, and still unlocks', async () => {
    const script = join(agent.scriptsDir, 'backup.sh')
    for (const mode of [0o775, 0o757]) {
      await chmod(script, mode)
      const { done, ran } = await backup()
      assert.equal(done.status, 'FAILED')
      assert.match(
        done.error_message,
        new RegExp(`refusing to run ${script}: it is writable by its group or by others \\(mode 0${mode.toString(8)}\\)`),
      )
      assert.deepEqual(ran, ['pre-backup-lock', 'pre-backup-check', 'backup-cleanup', 'post-backup-unlock'])
    }
    await chmod(script, 0o755)
    assert.equal((await backup()).done.status, 'SUCCEEDED')
  })

  it('refuses a script whose directory is writable by others, but not in a sticky directory like /tmp', async () => {
    await chmod(agent.scriptsDir, 0o777)
    const open = await backup()
    assert.equal(open.done.status, 'FAILED')
    assert.match(open.done.error_message, /the directory .*scripts is writable by its group or by others and not sticky \(mode 0777\)/)
    assert.deepEqual(open.ran, [], 'not even the lock script ran')
    await chmod(agent.scriptsDir, 0o1777)
    assert.equal((await backup()).done.status, 'SUCCEEDED', 'sticky')
    await chmod(agent.scriptsDir, 0o755)
  })

  it('checks the target of a symlinked script too', async () => {
    const elsewhere = join(agent.root, 'shared')
    await mkdir(elsewhere, { mode: 0o770 })
    await chmod(elsewhere, 0o770)
    const target = join(elsewhere, 'backup.sh')
    await writeFile(target, await readFile(join(agent.scriptsDir, 'backup.sh')))
    await chmod(target, 0o755)
    const link = join(agent.scriptsDir, 'backup')
    await symlink(target, link)
    try {
      const { done } = await backup()
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, new RegExp(`refusing to run ${link}: the directory ${elsewhere} is writable`))
    } finally {
      await chmod(elsewhere, 0o750)
    }
    assert.equal((await backup()).done.status, 'SUCCEEDED')
  })
})

describe('script_secret_args=false', () => {
  let agent: Agent
  let probe: string
  const probeScript = (stage: string) =>
    [
      // argv as the whole machine sees it: /proc/<pid>/cmdline is world-readable
      `tr '\\0' ' ' < /proc/$$/cmdline > "$probe/${stage}.argv"`,
      `printf '%s' "$DB_PASSWORD" > "$probe/${stage}.db_password"`,
      `printf '%s' "$ENCRYPTION_KEY" > "$probe/${stage}.encryption_key"`,
    ].join('\n')
  before(async () => {
    agent = await startAgent({
      env: { script_secret_args: 'false' },
      scripts: {
        backup: `${probeScript('backup')}\necho dump > "$5.sql"`,
        restore: probeScript('restore'),
        'pre-backup-lock': probeScript('lock'),
      },
    })
    probe = join(agent.root, 'probe')
    await mkdir(probe)
  })
  after(() => agent.stop())

  it('passes the password and encryption key as empty arguments and as DB_PASSWORD / ENCRYPTION_KEY', async () => {
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { parameters: { probe } }))).status,
      201,
    )
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const argv = await readFile(join(probe, 'backup.argv'), 'utf8')
    assert.ok(!argv.includes(DB_PASSWORD) && !argv.includes(ENCRYPTION_KEY), argv)
    assert.equal(await readFile(join(probe, 'backup.db_password'), 'utf8'), DB_PASSWORD)
    assert.equal(await readFile(join(probe, 'backup.encryption_key'), 'utf8'), ENCRYPTION_KEY)
    // the same positions as before, the secrets left empty
    const args = (await agent.trace()).find((l) => l.startsWith('backup '))?.split(' ') ?? []
    assert.deepEqual([args[3], args[8]], ['', ''])
    assert.deepEqual(args.slice(1, 3), ['10.0.0.12', 'backup-user'])
    assert.equal(args[6], id)
    // only the stages whose arguments carried them get them
    assert.equal(await readFile(join(probe, 'lock.db_password'), 'utf8'), '')
  })

  it('does the same for the restore script', async () => {
    const id = managerId()
    assert.equal(
      (
        await agent.request(
          'PUT',
          '/restore',
          managerRestoreBody(id, skipStorageDestination({ filename: 'x.sql' }), { parameters: { probe } }),
        )
      ).status,
      201,
    )
    const done = await agent.waitFor('restore', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    const argv = await readFile(join(probe, 'restore.argv'), 'utf8')
    assert.ok(!argv.includes(DB_PASSWORD) && !argv.includes(ENCRYPTION_KEY), argv)
    assert.equal(await readFile(join(probe, 'restore.db_password'), 'utf8'), DB_PASSWORD)
    assert.equal(await readFile(join(probe, 'restore.encryption_key'), 'utf8'), ENCRYPTION_KEY)
  })
})

describe('file modes and job_group', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-modes')
  const target = s3.target(bucket)
  let agent: Agent
  before(async () => {
    await s3.createBucket(bucket)
    agent = await startAgent({ env: { job_group: 'backup' } })
  })
  after(() => agent.stop())

  it('creates job directories 0750 and restore files 0640, in job_group (and the directories above)', async () => {
    const gid = Number(execFileSync('getent', ['group', 'backup'], { encoding: 'utf8' }).split(':')[2])
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target)))
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    for (const root of [agent.backupDir, agent.restoreDir]) {
      const info = await stat(root)
      assert.equal(info.mode & 0o7777, 0o750, root)
      assert.equal(info.gid, gid, `${root} lets the group through`)
    }
    const dir = await stat(join(agent.backupDir, id))
    assert.equal(dir.mode & 0o7777, 0o750)
    assert.equal(dir.gid, gid)

    const rid = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename: backup.filename })))
    const restore = await agent.waitFor('restore', rid)
    assert.equal(restore.status, 'SUCCEEDED', restore.error_message)
    const restoreDir = await stat(join(agent.restoreDir, rid))
    assert.equal(restoreDir.mode & 0o7777, 0o750)
    assert.equal(restoreDir.gid, gid)
    const file = await stat(join(agent.restoreDir, rid, backup.filename))
    assert.equal(file.mode & 0o7777, 0o640)
    assert.equal(file.gid, gid)
  })

  it('starts with a warning when job_group names no group, and keeps directories 0750', async () => {
    const other = await startAgent({ env: { job_group: 'no-such-group-here' } })
    try {
      assert.match(other.output(), /job_group: cannot use the value given \(no group named no-such-group-here on this machine\)/)
      const id = managerId()
      await other.request('POST', '/backup', managerBackupBody(id, skipStorageDestination()))
      assert.equal((await other.waitFor('backup', id)).status, 'SUCCEEDED')
      assert.equal((await stat(join(other.backupDir, id))).mode & 0o7777, 0o750)
    } finally {
      await other.stop()
    }
  })
})

describe('signals and the secret audit', () => {
  it('survives SIGHUP without TLS', async () => {
    const agent = await startAgent()
    try {
      agent.signal('SIGHUP')
      await agent.waitForOutput(/SIGHUP: nothing to reload/)
      assert.equal((await agent.request('GET', '/status')).status, 200)
    } finally {
      await agent.stop()
    }
  })

  it('fails a test whose agent printed a secret it was sent', async () => {
    const agent = await startAgent()
    let stopped = false
    try {
      // The agent logs the URL of a 404: a secret put in a path lands in its output.
      agent.addSecrets(['leaky-secret-value'])
      await agent.request('GET', '/no-such-route/leaky-secret-value')
      await agent.waitForOutput(/no-such-route/)
      assert.throws(() => agent.assertNoSecrets(), /contains the secret "leaky-secret-value"/)
      await assert.rejects(agent.stop(), /contains the secret "leaky-secret-value"/)
      stopped = true
    } finally {
      if (!stopped) await agent.stop().catch(() => {})
    }
  })
})
