import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPrivateDirectory, prepareJobDirectory, recreateMissingJobDirectory, removeEntries } from '../../../src/jobs/directory.ts'
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
        assert.match(
          error.message,
          /job-3: it already exists and allowed_to_delete_files is false, so what it holds is not removed .*set allowed_to_delete_files=true$/,
        )
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
    await assert.rejects(
      prepareJobDirectory(join(base, 'file', 'job-5'), { existing: 'empty', gid: undefined }),
      /^JobError: cannot prepare the job directory /,
    )
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
        assert.throws(
          () => held.pinned(),
          (error: Error) => {
            assert.ok(error instanceof JobError)
            assert.match(
              error.message,
              new RegExp(
                `^the job directory ${dir} was replaced or removed while the job ran \\(.*\\); the agent reads and writes only the directory it prepared$`,
              ),
            )
            return true
          },
          replace,
        )
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
      await assert.rejects(
        openPrivateDirectory(join(base, name)),
        (error: Error) => {
          assert.ok(error instanceof JobError)
          assert.match(
            error.message,
            new RegExp(
              `^the agent's working directory ${join(base, name)} was replaced while it was used \\(.*\\); nothing was written through it$`,
            ),
          )
          return true
        },
        name,
      )
    }
  })
})

const RACER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
while True:
    try:
        os.makedirs('s/t', exist_ok=True)
        for f in ('f1', 'f2', 'f3'): open('s/t/' + f, 'w').close()
    except OSError: pass
    try: os.symlink(sys.argv[2], 'l')
    except OSError: pass
    libc.renameat2(-100, b's', -100, b'l', 2)
    libc.renameat2(-100, b's', -100, b'l', 2)
`

describe('removeEntries', () => {
  it('removes a tree without following links: link targets (files, directories, missing paths) stay', async () => {
    const base = root()
    const outside = join(base, 'outside')
    mkdirSync(join(outside, 'deep'), { recursive: true })
    writeFileSync(join(outside, 'deep', 'kept'), 'kept')
    const dir = join(base, 'dir')
    mkdirSync(join(dir, 'a', 'b', 'c'), { recursive: true })
    writeFileSync(join(dir, 'a', 'b', 'c', 'file'), 'x')
    symlinkSync(outside, join(dir, 'a', 'to-dir'))
    symlinkSync(join(outside, 'deep', 'kept'), join(dir, 'a', 'b', 'to-file'))
    symlinkSync(join(base, 'missing'), join(dir, 'dangling'))
    chmodSync(join(dir, 'a', 'b'), 0o500) // a directory the agent (root) can still empty
    await removeEntries(dir)
    assert.deepEqual(readdirSync(dir), [])
    assert.equal(readFileSync(join(outside, 'deep', 'kept'), 'utf8'), 'kept')
  })

  it('works through a held directory: moved aside and replaced by a symlink, it is still the one emptied', async () => {
    const base = root()
    const outside = join(base, 'outside')
    mkdirSync(outside)
    writeFileSync(join(outside, 'kept'), 'kept')
    const dir = join(base, 'dir')
    mkdirSync(join(dir, 'sub'), { recursive: true })
    writeFileSync(join(dir, 'sub', 'old'), 'x')
    const { open } = await import('node:fs/promises')
    const handle = await open(join(dir, 'sub'), 'r')
    try {
      renameSync(join(dir, 'sub'), join(dir, 'moved'))
      symlinkSync(outside, join(dir, 'sub'))
      await removeEntries(`/proc/self/fd/${handle.fd}`)
    } finally {
      await handle.close()
    }
    assert.deepEqual(readdirSync(join(dir, 'moved')), [])
    assert.deepEqual(readdirSync(outside), ['kept'])
  })

  it('a racer swapping a subdirectory for a symlink to outside while the tree is removed never reaches outside', async () => {
    const { spawn } = await import('node:child_process')
    const base = root()
    const outside = join(base, 'outside')
    mkdirSync(outside)
    for (let i = 0; i < 20; i++) writeFileSync(join(outside, `kept-${i}`), 'kept')
    const dir = join(base, 'dir')
    mkdirSync(dir)
    // Keeps putting back a directory full of files at s, and swapping it atomically
    // (renameat2 RENAME_EXCHANGE) with a symlink to outside. Node's fs.rm, walking by path,
    // deleted everything outside within a second of this.
    const racer = spawn('python3', ['-c', RACER, dir, outside], { stdio: 'ignore' })
    try {
      while (!existsSync(join(dir, 's'))) await new Promise((resolve) => setImmediate(resolve)) // the racer runs
      for (let i = 0; i < 3000; i++) await removeEntries(dir).catch(() => {}) // a lost race may fail: never outside
    } finally {
      racer.kill('SIGKILL')
    }
    // (the racer itself may have made entries there, through its own link: only removals count)
    const left = readdirSync(outside)
    assert.deepEqual(
      Array.from({ length: 20 }, (_, i) => `kept-${i}`).filter((name) => !left.includes(name)),
      [],
      'nothing outside was removed',
    )
  })
})

describe('recreateMissingJobDirectory', () => {
  it('replaces whatever took the job name (a symlink to a directory or a file, a dangling one, a file) by a new directory; targets stay', () => {
    for (const kind of ['link to a directory', 'link to a file', 'dangling link', 'file']) {
      const base = root()
      const outside = join(base, 'outside')
      mkdirSync(outside)
      writeFileSync(join(outside, 'kept'), 'kept')
      const dir = join(base, 'job')
      if (kind === 'link to a directory') symlinkSync(outside, dir)
      else if (kind === 'link to a file') symlinkSync(join(outside, 'kept'), dir)
      else if (kind === 'dangling link') symlinkSync(join(base, 'missing'), dir)
      else writeFileSync(dir, 'x')
      recreateMissingJobDirectory(dir, undefined)
      const now = lstatSync(dir)
      assert.ok(now.isDirectory() && !now.isSymbolicLink(), kind)
      assert.equal(now.mode & 0o7777, 0o750, kind)
      assert.deepEqual(readdirSync(dir), [], kind)
      assert.deepEqual(readdirSync(outside), ['kept'], kind)
      assert.equal(readFileSync(join(outside, 'kept'), 'utf8'), 'kept', kind)
      assert.equal(existsSync(join(base, 'missing')), false, kind)
    }
  })
})
