import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPrivateDirectory, prepareJobDirectory } from '../../../src/jobs/directory.ts'
import { JobError } from '../../../src/errors.ts'

const root = () => mkdtempSync(join(tmpdir(), 'jobdir-'))

describe('prepareJobDirectory', () => {
  it('creates a missing directory (and its parents) with mode 0750, whatever the umask', async () => {
    const dir = join(root(), 'backup', 'job-1')
    const umask = process.umask(0o077)
    try {
      await prepareJobDirectory(dir, { existing: 'empty', gid: undefined })
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
    await prepareJobDirectory(dir, { existing: 'empty', gid: undefined })
    assert.deepEqual(readdirSync(dir), [])
    assert.equal(statSync(dir).mode & 0o7777, 0o750)
  })

  it('refuses an existing directory, and leaves it as it was, when it may not be emptied (a restore without allowed_to_delete_files)', async () => {
    for (const entries of [['restore.sql'], []]) {
      const dir = join(root(), 'job-3')
      mkdirSync(dir, { mode: 0o700 })
      chmodSync(dir, 0o700)
      for (const name of entries) writeFileSync(join(dir, name), 'x')
      await assert.rejects(prepareJobDirectory(dir, { existing: 'refuse', gid: undefined }), (error: Error) => {
        assert.ok(error instanceof JobError)
        assert.match(error.message, /job-3: it already exists and allowed_to_delete_files is false, so what it holds is not removed .*set allowed_to_delete_files=true$/)
        return true
      })
      assert.deepEqual(readdirSync(dir), entries)
      assert.equal(statSync(dir).mode & 0o7777, 0o700)
    }
  })

  it('creates a missing directory also when an existing one would be refused', async () => {
    const dir = join(root(), 'job-3b')
    await prepareJobDirectory(dir, { existing: 'refuse', gid: undefined })
    assert.deepEqual(readdirSync(dir), [])
  })

  it('empties through symlinks without following them: their targets keep their contents', async () => {
    const base = root()
    const outside = join(base, 'outside')
    mkdirSync(join(outside, 'sub'), { recursive: true })
    writeFileSync(join(outside, 'precious'), 'keep')
    writeFileSync(join(outside, 'sub', 'deep'), 'keep')
    const dir = join(base, 'job-6')
    mkdirSync(join(dir, 'nested'), { recursive: true })
    symlinkSync(outside, join(dir, 'to-directory'))
    symlinkSync(join(outside, 'precious'), join(dir, 'to-file'))
    symlinkSync(outside, join(dir, 'nested', 'deeper-link'))
    symlinkSync(join(base, 'missing'), join(dir, 'dangling'))
    await prepareJobDirectory(dir, { existing: 'empty', gid: undefined })
    assert.deepEqual(readdirSync(dir), [])
    assert.deepEqual(readdirSync(outside).sort(), ['precious', 'sub'])
    assert.equal(readFileSync(join(outside, 'sub', 'deep'), 'utf8'), 'keep')
    assert.equal(readFileSync(join(outside, 'precious'), 'utf8'), 'keep')
  })

  it('refuses a symlink planted under the job name and leaves its target alone', async () => {
    const base = root()
    const elsewhere = join(base, 'elsewhere')
    mkdirSync(elsewhere, { mode: 0o755 })
    chmodSync(elsewhere, 0o755)
    writeFileSync(join(elsewhere, 'precious'), 'x')
    const dir = join(base, 'job-4')
    symlinkSync(elsewhere, dir)
    await assert.rejects(prepareJobDirectory(dir, { existing: 'empty', gid: undefined }), (error: Error) => {
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
    await assert.rejects(prepareJobDirectory(join(base, 'file', 'job-5'), { existing: 'empty', gid: undefined }), /^JobError: cannot prepare the job directory /)
  })
})

describe('the job directory, held open for the job', () => {
  it('is reached through its handle while its name leads to it; replaced (moved, removed, a symlink), it is refused, never followed', async () => {
    for (const replace of ['move', 'remove', 'symlink to a directory', 'file']) {
      const base = root()
      const dir = join(base, 'job')
      const outside = join(base, 'outside')
      mkdirSync(outside)
      const held = await prepareJobDirectory(dir, { existing: 'empty', gid: undefined })
      try {
        writeFileSync(join(held.pinned(), 'dump.sql'), 'mine')
        assert.equal(held.scriptDirectory(false), dir)
        if (replace === 'move') renameSync(dir, join(base, 'moved'))
        else rmSync(dir, { recursive: true })
        if (replace !== 'file') symlinkSync(outside, dir)
        else writeFileSync(dir, 'x')
        assert.throws(() => held.pinned(), (error: Error) => {
          assert.ok(error instanceof JobError)
          assert.match(error.message, new RegExp(`^the job directory ${dir} was replaced or removed while the job ran \\(.*\\); the agent reads and writes only the directory it prepared$`))
          return true
        }, replace)
        assert.throws(() => held.scriptDirectory(false), /was replaced or removed/, 'lock, check and the main script do not run there')
        assert.match(held.scriptDirectory(true), /^\/proc\/\d+\/fd\/\d+$/, `${replace}: cleanup and unlock run in the held directory`)
        assert.deepEqual(readdirSync(outside), [], replace)
      } finally {
        held.close()
      }
    }
  })
})

describe('openPrivateDirectory', () => {
  it("opens the agent's own 0700 directory; refuses a symlink, a file, or a directory of another mode in its place", async () => {
    const base = root()
    const mine = join(base, 'mine')
    mkdirSync(mine, { mode: 0o700 })
    chmodSync(mine, 0o700)
    await (await openPrivateDirectory(mine)).close()
    const outside = join(base, 'outside')
    mkdirSync(outside, { mode: 0o700 })
    chmodSync(outside, 0o700)
    symlinkSync(outside, join(base, 'link'))
    writeFileSync(join(base, 'file'), '')
    mkdirSync(join(base, 'open'), { mode: 0o777 })
    chmodSync(join(base, 'open'), 0o777)
    for (const name of ['link', 'file', 'open']) {
      await assert.rejects(openPrivateDirectory(join(base, name)), (error: Error) => {
        assert.ok(error instanceof JobError)
        assert.match(error.message, new RegExp(`^the agent's working directory ${join(base, name)} was replaced while it was used \\(.*\\); nothing was written through it$`))
        return true
      }, name)
    }
  })
})
