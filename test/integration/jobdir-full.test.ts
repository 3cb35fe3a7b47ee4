// Job directories on a full filesystem (issue 14, items 3 and 4): directory_backup and
// directory_restore on a small tmpfs this test mounts. A dump or a download that fills it fails
// the job with a clear message; cleanup and unlock run, the partial download is removed and no
// job slot leaks (max_job_number 1: the next trigger is accepted).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody, s3Destination } from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

const run = promisify(execFile)

describe('job directories on a full filesystem', () => {
  let dir: string
  let mount: string
  let mounted = false
  let agent: Agent | undefined
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-jobdir-full-'))
    mount = join(dir, 'jobs-fs')
    await mkdir(mount)
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', mount])
    mounted = true
  })
  after(async () => {
    await agent?.stop()
    if (mounted) await run('umount', [mount]).catch(() => run('umount', ['-l', mount]))
    await rm(dir, { recursive: true, force: true })
  })

  it('a dump that fills directory_backup fails the job; cleanup and unlock run; the slot is free', async () => {
    agent = await startAgent({
      scripts: { backup: 'if [ "$big" = yes ]; then dd if=/dev/zero of="$5.sql" bs=64k count=100 2>&1; exit $?; fi; printf x > "$5.sql"' },
      env: { directory_backup: join(mount, 'backup'), max_job_number: '1', local_storage_root: join(dir, 'local'), log_level: 'debug' },
    })
    const id = managerId()
    assert.equal(
      (
        await agent.request(
          'POST',
          '/backup',
          managerBackupBody(id, { type: 'LOCAL', filenamePrefix: 'p/' }, { parameters: { job: id, big: 'yes' } }),
        )
      ).status,
      201,
    )
    const done = await agent.waitFor('backup', id, 30_000)
    assert.equal(done.status, 'FAILED')
    assert.deepEqual(await agent.stagesRun(id), ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'])
    assert.equal(done.error_message, 'backup script failed with exit code 1; the job store could not be written (disk full?)')
    // the store shares the filesystem: full too, so triggers wait for space
    const refused = await agent.request('POST', '/backup', managerBackupBody(managerId(), { type: 'LOCAL', filenamePrefix: 'p/' }))
    assert.equal(refused.status, 503, refused.text)
    await rm(join(mount, 'backup', id), { recursive: true })
    const t0 = Date.now()
    while ((await agent.request('GET', '/healthz', undefined, { auth: null })).json().store !== undefined) {
      assert.ok(Date.now() - t0 < 45_000, 'the store never became writable again')
      await new Promise((r) => setTimeout(r, 200))
    }
    const next = managerId()
    const r = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(next, { type: 'LOCAL', filenamePrefix: 'p/' }, { parameters: { job: next } }),
    )
    assert.equal(r.status, 201, r.text)
    const ok = await agent.waitFor('backup', next, 30_000)
    assert.equal(ok.status, 'SUCCEEDED', JSON.stringify(ok))
  })

  for (const kind of ['LOCAL', 'S3'] as const)
    it(`a ${kind} download that fills directory_restore fails the job with a clear message and removes the partial download`, async () => {
      let destination: Record<string, unknown> = { type: 'LOCAL', filenamePrefix: 'p/' }
      if (kind === 'S3') {
        const s3 = s3Lab()
        const bucket = uniqueName('jobdir-full')
        await s3.createBucket(bucket)
        destination = s3Destination(s3.target(bucket))
      }
      await agent?.stop()
      agent = await startAgent({
        scripts: { backup: 'dd if=/dev/urandom of="$5.sql" bs=64k count=100 2>/dev/null' },
        env: {
          directory_restore: join(mount, `restore-${kind}`),
          max_job_number: '1',
          local_storage_root: join(dir, `local-${kind}`),
          log_level: 'debug',
        },
      })
      const id = managerId()
      assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, destination, { parameters: { job: id } }))).status, 201)
      const b = await agent.waitFor('backup', id, 30_000)
      assert.equal(b.status, 'SUCCEEDED', JSON.stringify(b))
      const rid = managerId()
      const res = await agent.request(
        'PUT',
        '/restore',
        managerRestoreBody(rid, { ...destination, filename: b.filename }, { parameters: { job: rid } }),
      )
      assert.equal(res.status, 201, res.text)
      const done = await agent.waitFor('restore', rid, 30_000)
      assert.equal(done.status, 'FAILED')
      assert.equal(
        done.error_message,
        `download of ${b.filename} failed: cannot write in the job directory ${join(mount, `restore-${kind}`, rid)}: no space left on the device (ENOSPC); the partial file was removed`,
        'the message names the job directory, not the storage',
      )
      assert.deepEqual(await agent.stagesRun(rid), ['pre-restore-lock', 'restore-cleanup', 'post-restore-unlock'])
      assert.deepEqual(await readdir(join(mount, `restore-${kind}`), { recursive: true }), [rid], 'the partial download is gone')
      const { stdout } = await run('df', ['--output=used', '-B1', mount])
      assert.ok(Number(stdout.trim().split('\n').at(-1)) < 256 * 1024, `its space is free (no deleted file held open): ${stdout}`)
      const next = managerId()
      const r = await agent.request(
        'POST',
        '/backup',
        managerBackupBody(next, { type: 'LOCAL', filenamePrefix: 'p/' }, { parameters: { job: next } }),
      )
      assert.equal(r.status, 201, r.text)
      assert.equal((await agent.waitFor('backup', next, 30_000)).status, 'SUCCEEDED', 'the slot was free')
    })
})

describe('a job directory whose filesystem has no inode left', () => {
  it('the download cannot make its private directory: the message names the job directory; cleanup and unlock run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-jobdir-inodes-'))
    const mount = join(dir, 'fs')
    await mkdir(mount)
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m,nr_inodes=64,mode=0755', 'tmpfs', mount])
    let agent: Agent | undefined
    try {
      await mkdir(join(mount, 'fill'))
      agent = await startAgent({
        // the lock script takes every inode left, after the agent made the job directory
        scripts: { 'pre-restore-lock': `i=0; while touch '${join(mount, 'fill')}/f'$i 2>/dev/null; do i=$((i+1)); done` },
        env: { directory_restore: join(mount, 'restore'), max_job_number: '1', local_storage_root: join(dir, 'local') },
      })
      const id = managerId()
      assert.equal(
        (
          await agent.request(
            'POST',
            '/backup',
            managerBackupBody(id, { type: 'LOCAL', filenamePrefix: 'p/' }, { parameters: { job: id } }),
          )
        ).status,
        201,
      )
      const b = await agent.waitFor('backup', id, 30_000)
      assert.equal(b.status, 'SUCCEEDED', JSON.stringify(b))
      const rid = managerId()
      assert.equal(
        (
          await agent.request(
            'PUT',
            '/restore',
            managerRestoreBody(rid, { type: 'LOCAL', filenamePrefix: 'p/', filename: b.filename }, { parameters: { job: rid } }),
          )
        ).status,
        201,
      )
      const done = await agent.waitFor('restore', rid, 30_000)
      assert.equal(done.status, 'FAILED')
      assert.equal(
        done.error_message,
        `download of ${b.filename} failed: cannot write in the job directory ${join(mount, 'restore', rid)}: no space left on the device (ENOSPC); the partial file was removed`,
      )
      assert.deepEqual(await agent.stagesRun(rid), ['pre-restore-lock', 'restore-cleanup', 'post-restore-unlock'])
      assert.deepEqual(await readdir(join(mount, 'restore', rid)), [])
    } finally {
      await agent?.stop()
      await run('umount', [mount]).catch(() => run('umount', ['-l', mount]))
      await rm(dir, { recursive: true, force: true })
    }
  })
})
