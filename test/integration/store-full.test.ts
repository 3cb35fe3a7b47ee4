// A job store that cannot be written (issue 14, item 4): directory_state on a small tmpfs this
// test mounts, filled while a job runs. Cleanup and unlock still run, the job ends FAILED with a
// message naming the store, new triggers get 503, /healthz stays 200 and says the store is
// unwritable; once space is free the records are written (checked across a SIGKILL).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DatabaseSync } from 'node:sqlite'
import { BACKUP_STAGES, startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId } from '../helpers/bodies.ts'

const run = promisify(execFile)
const skip = { type: 'S3', skipStorage: true, bucket: 'b', authKey: 'k', authSecret: 'full-disk-secret-P3', filenamePrefix: '' }

function stepScripts(steps: string): Record<string, string> {
  const scripts: Record<string, string> = {}
  for (const stage of BACKUP_STAGES) {
    scripts[stage] = [
      `if [ "$sleep_in" = "${stage}" ]; then sleep "\${sleep_secs:-3}"; fi`,
      `if [ -n "$tag" ]; then printf '%s\\n' "$tag ${stage}" >> '${steps}'; fi`,
    ].join('\n')
  }
  return scripts
}

/** Fills the filesystem: dd stops at ENOSPC (its failure is the point). */
async function fill(mount: string): Promise<void> {
  for (const [name, bs] of [
    ['filler', '64k'],
    ['filler-small', '4k'],
    ['filler-tiny', '512'],
  ]) {
    await run('dd', ['if=/dev/zero', `of=${join(mount, name as string)}`, `bs=${bs}`]).catch(() => undefined)
  }
  const { stdout } = await run('df', ['--output=avail', '-B1', mount])
  assert.equal(Number(stdout.trim().split('\n').at(-1)), 0, 'the filesystem is full')
}

async function free(mount: string): Promise<void> {
  for (const name of ['filler', 'filler-small', 'filler-tiny']) await rm(join(mount, name), { force: true })
}

describe('a job store on a full filesystem', () => {
  let dir: string
  let mount: string
  let steps: string
  let mounted = false
  let agent: Agent | undefined
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-store-full-'))
    mount = join(dir, 'state-fs')
    steps = join(dir, 'steps.log')
    await run('mkdir', [mount])
    // needs root, as every test of this suite: a failure here fails the test loudly
    await run('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mount])
    mounted = true
  })
  after(async () => {
    await agent?.stop()
    if (mounted) {
      await run('umount', [mount]).catch(() => run('umount', ['-l', mount]))
    }
    await rm(dir, { recursive: true, force: true })
  })

  const stepsOf = async (id: string) =>
    (await readFile(steps, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.startsWith(`${id} `))
      .map((l) => l.slice(id.length + 1))

  it('runs cleanup and unlock, fails the job naming the store, refuses new jobs with 503, and writes the records once there is space', async () => {
    agent = await startAgent({ scripts: stepScripts(steps), env: { directory_state: join(mount, 'state') } })
    const options = agent.restartOptions()
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { tag: id, sleep_in: 'backup', sleep_secs: 2 } })))
        .status,
      201,
    )
    const deadline = Date.now() + 10_000
    while ((await agent.request('GET', `/backup/${id}`)).json().state !== 'backup') {
      assert.ok(Date.now() < deadline, 'the job never reached its backup stage')
      await new Promise((r) => setTimeout(r, 25))
    }
    await fill(mount)

    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.state, 'finished')
    assert.equal(done.error_message, 'the job store could not be written (disk full?)')
    assert.deepEqual(await stepsOf(id), BACKUP_STAGES, 'cleanup and unlock ran')
    assert.equal((await agent.request('POST', `/backup/${id}/cancel`)).status, 409, 'not running any more')

    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
    assert.equal(refused.status, 503)
    assert.match(refused.headers.get('content-type') ?? '', /application\/json/)
    assert.match(refused.json().message, /job store could not be written/)
    assert.ok(!refused.text.includes(mount), 'no path in the answer')
    const health = await agent.request('GET', '/healthz', undefined, { auth: null })
    assert.equal(health.status, 200)
    assert.deepEqual(health.json(), { status: 'ok', store: 'unwritable' })
    const listed = (await agent.request('GET', '/backup')).json()
    assert.ok(
      listed.jobs.some((j: { id: string }) => j.id === id),
      'listings answer from memory too',
    )

    // space again: the retry timer writes what waits, without any new request
    await free(mount)
    const writable = Date.now() + 45_000
    while ((await agent.request('GET', '/healthz', undefined, { auth: null })).json().store !== undefined) {
      assert.ok(Date.now() < writable, 'the store never became writable again')
      await new Promise((r) => setTimeout(r, 200))
    }
    await agent.waitForOutput(/the job store can be written again/)
    const inMemory = (await agent.request('GET', `/backup/${id}`)).text

    // SIGKILL: nothing is written at exit, so what the restarted agent shows was written before
    await agent.kill('SIGKILL')
    agent = await startAgent(options)
    assert.equal((await agent.request('GET', `/backup/${id}`)).text, inMemory)
    assert.deepEqual(await stepsOf(id), BACKUP_STAGES, 'nothing ran again: the final record was written')
    const next = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip, { parameters: { tag: next } }))).status, 201)
    assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
    assert.ok(!agent.output().includes('full-disk-secret-P3'))
  })

  it('a trigger writes the waiting records first once there is space again (no need to wait for the timer)', async () => {
    assert.ok(agent, 'the first test started the agent')
    const id = managerId()
    assert.equal(
      (
        await agent.request(
          'POST',
          '/backup',
          managerBackupBody(id, skip, { parameters: { tag: id, sleep_in: 'pre-backup-check', sleep_secs: 1 } }),
        )
      ).status,
      201,
    )
    await new Promise((r) => setTimeout(r, 300))
    await fill(mount)
    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /the job store could not be written \(disk full\?\)$/)
    assert.deepEqual(await stepsOf(id), BACKUP_STAGES)
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))).status, 503)
    await free(mount)
    const next = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip))).status, 201, 'accepted at once')
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok' })
    assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
    const body = (await agent.request('GET', `/backup/${id}`)).text
    await agent.kill('SIGKILL')
    agent = await startAgent({ ...agent.restartOptions() })
    assert.equal((await agent.request('GET', `/backup/${id}`)).text, body)
  })

  it('killed while the disk is full: the agent starts anyway, recovery runs unlock (at least once) and its record is written once there is space', async () => {
    assert.ok(agent, 'the first test started the agent')
    const options = agent.restartOptions()
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { tag: id, sleep_in: 'backup', sleep_secs: 30 } })))
        .status,
      201,
    )
    const deadline = Date.now() + 10_000
    while (!(await stepsOf(id)).includes('pre-backup-check') || (await agent.request('GET', `/backup/${id}`)).json().state !== 'backup') {
      assert.ok(Date.now() < deadline, 'the job never reached its backup stage')
      await new Promise((r) => setTimeout(r, 25))
    }
    await fill(mount)
    await agent.kill('SIGKILL')

    // a restart on the full disk: no restart loop, the stored state is served and recovered
    agent = await startAgent(options)
    const health = await agent.request('GET', '/healthz', undefined, { auth: null })
    assert.equal(health.status, 200)
    assert.deepEqual(health.json(), { status: 'ok', store: 'unwritable' }, 'recovery could not store the FAILED state')
    const interrupted = (await agent.request('GET', `/backup/${id}`)).json()
    assert.equal(interrupted.status, 'FAILED')
    assert.match(interrupted.error_message, /^interrupted by agent restart during backup/)
    const ran = Date.now() + 30_000
    while (!(await stepsOf(id)).includes('post-backup-unlock')) {
      assert.ok(Date.now() < ran, `unlock never ran: ${JSON.stringify(await stepsOf(id))}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    await agent.waitForOutput(new RegExp(`"job":"${id}".*"msg":"recovery finished"`), 10_000)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 200, 'nothing owed in memory: deletable, the removal waits too')
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))).status, 503)

    await free(mount)
    const writable = Date.now() + 45_000
    while ((await agent.request('GET', '/healthz', undefined, { auth: null })).json().store !== undefined) {
      assert.ok(Date.now() < writable, 'the store never became writable again')
      await new Promise((r) => setTimeout(r, 200))
    }
    await agent.kill('SIGKILL')
    agent = await startAgent(options)
    assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404, 'the removal was written')
    await new Promise((r) => setTimeout(r, 500))
    // (the backup script records itself after its sleep: recovery stopped it first)
    assert.deepEqual(
      await stepsOf(id),
      ['pre-backup-lock', 'pre-backup-check', 'backup-cleanup', 'post-backup-unlock'],
      'cleanup and unlock once each; nothing ran again',
    )
  })

  it('starts on a full disk after a clean stop (no -shm file to create): polls answer, triggers get 503 until there is space', async () => {
    assert.ok(agent, 'the first test started the agent')
    const options = agent.restartOptions()
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skip))).status, 201)
    assert.equal((await agent.waitFor('backup', id)).status, 'SUCCEEDED')
    assert.equal(await agent.kill('SIGTERM'), 0)
    assert.deepEqual(
      (await readdir(join(mount, 'state'))).filter((n) => n.endsWith('-shm')),
      [],
      'a clean stop leaves no -shm file',
    )
    await fill(mount)

    agent = await startAgent(options)
    assert.equal((await agent.request('GET', `/backup/${id}`)).json().status, 'SUCCEEDED')
    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
    assert.equal(refused.status, 503, refused.text)
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok', store: 'unwritable' })
    await free(mount)
    const next = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip))).status, 201)
    assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
  })

  it('starts on a full disk with a store of an older schema (an upgrade): read as it is, migrated at a later start', async () => {
    await agent?.stop()
    agent = undefined
    const state = join(mount, 'older')
    await run('mkdir', ['-m', '0700', state])
    const old = new DatabaseSync(join(state, 'jobs.sqlite'))
    old.exec(`PRAGMA journal_mode = WAL;
      CREATE TABLE jobs (kind TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, record TEXT NOT NULL,
        started_at INTEGER NOT NULL, ended_at INTEGER, PRIMARY KEY (kind, id));
      CREATE INDEX jobs_by_end ON jobs (ended_at);
      PRAGMA user_version = 1;`)
    const id = managerId()
    old
      .prepare('INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run('backup', id, 'SUCCEEDED', '{"status":"SUCCEEDED","state":"finished"}', '{}', Date.now(), Date.now())
    old.close()
    await fill(mount)
    agent = await startAgent({ scripts: stepScripts(steps), env: { directory_state: state } })
    assert.equal((await agent.request('GET', `/backup/${id}`)).json().status, 'SUCCEEDED')
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))).status, 503)
    await free(mount)
    const options = agent.restartOptions()
    await agent.kill('SIGTERM')
    agent = await startAgent(options)
    const next = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(next, skip))).status, 201)
    assert.equal((await agent.waitFor('backup', next)).status, 'SUCCEEDED')
    await agent.stop()
    agent = undefined
  })

  it('starts on a full disk with no store yet (a first start): triggers get 503 and /healthz says so until there is space, then the store is created', async () => {
    await agent?.stop()
    agent = undefined
    await fill(mount)
    const state = join(mount, 'first-start')
    agent = await startAgent({ scripts: stepScripts(steps), env: { directory_state: state } })
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok', store: 'unwritable' })
    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
    assert.equal(refused.status, 503, refused.text)
    assert.match(refused.json().message, /job store could not be written \(disk full\?\)/)
    assert.deepEqual((await agent.request('GET', '/backup')).json().jobs, [])
    await free(mount)
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skip))).status, 201)
    assert.equal((await agent.waitFor('backup', id)).status, 'SUCCEEDED')
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok' })
    const options = agent.restartOptions()
    await agent.kill('SIGKILL')
    agent = await startAgent(options)
    assert.equal(
      (await agent.request('GET', `/backup/${id}`)).json().status,
      'SUCCEEDED',
      'the record was written to the store created late',
    )
  })
})

/** EXT4_IOC_SHUTDOWN (_IOR('X', 125, __u32)) with EXT4_GOING_FLAGS_NOLOGFLUSH: every later I/O fails with EIO. */
const SHUT_DOWN = "import fcntl, os, struct, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))"

describe('a job store on a filesystem that fails with EIO', () => {
  let dir: string
  let mount: string
  let steps: string
  let mounted = false
  let agent: Agent | undefined
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-store-eio-'))
    mount = join(dir, 'state-fs')
    steps = join(dir, 'steps.log')
    const image = join(dir, 'state.img')
    await run('truncate', ['-s', '16M', image])
    await run('mkfs.ext4', ['-q', '-F', image])
    await run('mkdir', [mount])
    // a loop-mounted ext4 (needs root and loop devices): a failure here fails the test loudly
    await run('mount', ['-o', 'loop', image, mount])
    mounted = true
  })
  after(async () => {
    await agent?.stop()
    if (mounted) await run('umount', [mount]).catch(() => run('umount', ['-l', mount]))
    await rm(dir, { recursive: true, force: true })
  })

  const stepsOf = async (id: string) =>
    (await readFile(steps, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.startsWith(`${id} `))
      .map((l) => l.slice(id.length + 1))

  it('runs cleanup and unlock, fails the job naming the store (I/O error), refuses new jobs with 503 and keeps /healthz at 200', async () => {
    agent = await startAgent({ scripts: stepScripts(steps), env: { directory_state: join(mount, 'state') } })
    const id = managerId()
    assert.equal(
      (await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { tag: id, sleep_in: 'backup', sleep_secs: 2 } })))
        .status,
      201,
    )
    const deadline = Date.now() + 10_000
    while ((await agent.request('GET', `/backup/${id}`)).json().state !== 'backup') {
      assert.ok(Date.now() < deadline, 'the job never reached its backup stage')
      await new Promise((r) => setTimeout(r, 25))
    }
    await run('python3', ['-c', SHUT_DOWN, mount])

    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.equal(done.error_message, 'the job store could not be written (I/O error)')
    assert.deepEqual(await stepsOf(id), BACKUP_STAGES, 'cleanup and unlock ran')
    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
    assert.equal(refused.status, 503)
    assert.match(refused.json().message, /job store could not be written/)
    const health = await agent.request('GET', '/healthz', undefined, { auth: null })
    assert.equal(health.status, 200)
    assert.deepEqual(health.json(), { status: 'ok', store: 'unwritable' })
    assert.equal((await agent.request('GET', `/backup/${id}`)).json().status, 'FAILED', 'polls answer from memory')
    // a graceful stop still ends (the store cannot take the last write; that is logged)
    assert.equal(await agent.kill('SIGTERM'), 0)
    await agent.waitForOutput(/job records the store did not take are lost at exit/)
  })
})

describe('a job store on a read-only filesystem', () => {
  let dir: string
  let mount: string
  let mounted = false
  let agent: Agent | undefined
  const remount = (mode: 'ro' | 'rw') => run('mount', ['-o', `remount,bind,${mode}`, mount])
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-store-ro-'))
    mount = join(dir, 'state-fs')
    await run('mkdir', [join(dir, 'source'), mount])
    // a bind mount remounted read-only (needs root): a failure here fails the test loudly
    await run('mount', ['--bind', join(dir, 'source'), mount])
    mounted = true
  })
  after(async () => {
    await agent?.stop()
    if (mounted) await run('umount', [mount]).catch(() => run('umount', ['-l', mount]))
    await rm(dir, { recursive: true, force: true })
  })

  it('a first start (no store yet) serves: 503 and store:unwritable until the filesystem is writable, then the store is created', async () => {
    await remount('ro')
    agent = await startAgent({ env: { directory_state: join(mount, 'state') } })
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok', store: 'unwritable' })
    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), skip))
    assert.equal(refused.status, 503, refused.text)
    assert.match(refused.json().message, /job store could not be written \(read-only filesystem\?\)/)
    await remount('rw')
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skip))).status, 201)
    assert.equal((await agent.waitFor('backup', id)).status, 'SUCCEEDED')
    assert.deepEqual((await agent.request('GET', '/healthz', undefined, { auth: null })).json(), { status: 'ok' })
  })

  it('a store that holds jobs stops the start with a message (recovery must read what is owed first)', async () => {
    assert.ok(agent, 'the first test started the agent')
    const options = agent.restartOptions()
    assert.equal(await agent.kill('SIGTERM'), 0)
    agent = undefined
    await remount('ro')
    await assert.rejects(startAgent(options), /exited with 1 before listening[\s\S]*not started: .*read-only file system/)
    await remount('rw')
    agent = await startAgent(options)
    assert.equal((await agent.request('GET', '/backup')).json().jobs.length, 1)
  })
})
