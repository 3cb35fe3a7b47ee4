import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prepareJobDirectory } from '../../../src/jobs/directory.ts'
import { JobError } from '../../../src/errors.ts'

const root = () => mkdtempSync(join(tmpdir(), 'jobdir-'))

describe('prepareJobDirectory', () => {
  it('creates a missing directory (and its parents) with mode 0750, whatever the umask', async () => {
    const dir = join(root(), 'backup', 'job-1')
    const umask = process.umask(0o077)
    try {
      await prepareJobDirectory(dir, { empty: true, gid: undefined })
    } finally {
      process.umask(umask)
    }
    assert.equal(statSync(dir).mode & 0o7777, 0o750)
    assert.deepEqual(readdirSync(dir), [])
  })

  it('empties a directory an earlier job with the same id left behind, and fixes its mode', async () => {
    const dir = join(root(), 'job-2')
    mkdirSync(join(dir, 'nested', 'deeper'), { recursive: true })
    writeFileSync(join(dir, 'old-dump.sql'), 'x')
    writeFileSync(join(dir, 'nested', 'deeper', 'file'), 'y')
    chmodSync(dir, 0o777)
    await prepareJobDirectory(dir, { empty: true, gid: undefined })
    assert.deepEqual(readdirSync(dir), [])
    assert.equal(statSync(dir).mode & 0o7777, 0o750)
  })

  it('keeps the contents when asked not to empty (restore)', async () => {
    const dir = join(root(), 'job-3')
    mkdirSync(dir)
    writeFileSync(join(dir, 'restore.sql'), 'x')
    await prepareJobDirectory(dir, { empty: false, gid: undefined })
    assert.deepEqual(readdirSync(dir), ['restore.sql'])
  })

  it('refuses a symlink planted under the job name and leaves its target alone', async () => {
    const base = root()
    const elsewhere = join(base, 'elsewhere')
    mkdirSync(elsewhere, { mode: 0o755 })
    chmodSync(elsewhere, 0o755)
    writeFileSync(join(elsewhere, 'precious'), 'x')
    const dir = join(base, 'job-4')
    symlinkSync(elsewhere, dir)
    await assert.rejects(prepareJobDirectory(dir, { empty: true, gid: undefined }), (error: Error) => {
      assert.ok(error instanceof JobError)
      assert.match(error.message, /^cannot prepare the job directory .*job-4: it is not a directory \(a symlink\?\)$/)
      return true
    })
    assert.ok(existsSync(join(elsewhere, 'precious')))
    assert.equal(statSync(elsewhere).mode & 0o7777, 0o755)
  })

  it('answers with a JobError when the directory cannot be made', async () => {
    const base = root()
    writeFileSync(join(base, 'file'), 'x')
    await assert.rejects(prepareJobDirectory(join(base, 'file', 'job-5'), { empty: true, gid: undefined }), /^JobError: cannot prepare the job directory /)
  })
})
