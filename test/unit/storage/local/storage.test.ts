import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, lstat, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile, mkdir } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalStorage } from '../../../../src/storage/local/storage.ts'
import { JobError } from '../../../../src/errors.ts'
import { downloadTo } from '../../../helpers/download.ts'

describe('LocalStorage', () => {
  it('uploads under the root with the prefix and downloads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'dump.sql'), 'rows')
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      let requests = 0
      await storage.upload(join(dir, 'dump.sql'), 'dump.sql', { onRequest: () => requests++ })
      assert.equal(await readFile(join(dir, 'root', 'pg', 'dump.sql'), 'utf8'), 'rows')
      const { size } = await downloadTo(storage, 'dump.sql', join(dir, 'back.sql'))
      assert.equal(size, 4)
      assert.equal(await readFile(join(dir, 'back.sql'), 'utf8'), 'rows')
      assert.equal(requests, 1)
      await assert.rejects(
        downloadTo(storage, 'missing.sql', join(dir, 'x')),
        (e: Error) => e instanceof JobError && /no such object/.test(e.message),
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses names that leave the root, also through a symlink', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      for (const [prefix, name] of [
        ['../', 'secret'],
        ['', '..'],
        ['a/../../', 'secret'],
        ['/', 'etc'],
      ] as const) {
        await assert.rejects(downloadTo(new LocalStorage(join(dir, 'root'), prefix), name, join(dir, 'x')), JobError, `${prefix}${name}`)
      }
      await mkdir(join(dir, 'root'))
      await symlink(dir, join(dir, 'root', 'link'))
      await assert.rejects(downloadTo(new LocalStorage(join(dir, 'root'), 'link/'), 'secret', join(dir, 'x')), /outside local_storage_root/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('reserves names with a part that starts with "." for its own files: no restore, no upload', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'dump.sql'), 'rows')
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      await storage.upload(join(dir, 'dump.sql'), 'x', { sha256: 'a'.repeat(64) })
      const before = await readdir(join(dir, 'root', 'pg'))
      assert.ok(before.includes('.x.meta.json'))
      const reserved = /has a part that starts with "\.": in LOCAL storage such names are reserved for the agent's own files/
      for (const name of ['.x.meta.json', '.x.partial', '.hidden', '.']) {
        await assert.rejects(downloadTo(storage, name, join(dir, 'out')), name === '.' ? /would leave local_storage_root/ : reserved)
        await assert.rejects(storage.upload(join(dir, 'dump.sql'), name), name === '.' ? /would leave local_storage_root/ : reserved)
        await assert.rejects(
          storage.uploadStream(
            (async function* () {
              yield Buffer.from('x')
            })(),
            name,
          ),
          name === '.' ? /would leave local_storage_root/ : reserved,
        )
      }
      await assert.rejects(new LocalStorage(join(dir, 'root'), '.pg/').upload(join(dir, 'dump.sql'), 'y'), reserved)
      await assert.rejects(new LocalStorage(join(dir, 'root'), 'pg/.hidden/').upload(join(dir, 'dump.sql'), 'y'), reserved)
      assert.deepEqual(await readdir(join(dir, 'root', 'pg')), before)
      assert.equal(await readFile(join(dir, 'root', 'pg', '.x.meta.json'), 'utf8'), JSON.stringify({ sha256: 'a'.repeat(64) }))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('never writes through a symlink at an object, metadata or partial name: the link is replaced, its target kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'dump.sql'), 'rows')
      await writeFile(join(dir, 'precious'), 'keep')
      await chmod(join(dir, 'precious'), 0o604)
      const folder = join(dir, 'root', 'pg')
      await mkdir(folder, { recursive: true })
      for (const name of ['obj', '.obj.meta.json', '.obj.partial']) await symlink(join(dir, 'precious'), join(folder, name))
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      await storage.upload(join(dir, 'dump.sql'), 'obj', { sha256: 'b'.repeat(64) })
      await storage.uploadStream(
        (async function* () {
          yield Buffer.from('streamed')
        })(),
        'obj',
        { metadata: { format: 'osb' } },
      )
      await storage.storeChecksum('obj', 'c'.repeat(64), {})
      assert.equal(await readFile(join(dir, 'precious'), 'utf8'), 'keep')
      assert.equal((await stat(join(dir, 'precious'))).mode & 0o7777, 0o604)
      assert.ok((await lstat(join(folder, 'obj'))).isFile())
      assert.ok((await lstat(join(folder, '.obj.meta.json'))).isFile())
      assert.equal(await readFile(join(folder, 'obj'), 'utf8'), 'streamed')
      await storage.abandon('obj') // removes the old-style partial name: the link, not its target
      assert.deepEqual((await readdir(folder)).sort(), ['.obj.meta.json', 'obj'])
      assert.equal(await readFile(join(dir, 'precious'), 'utf8'), 'keep')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('does not read an object through a symlink (even one inside the root), nor hang on a FIFO', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      const folder = join(dir, 'root')
      await mkdir(folder, { recursive: true })
      await writeFile(join(folder, 'real'), 'inside')
      await writeFile(join(dir, 'secret'), 'outside')
      await symlink(join(dir, 'secret'), join(folder, 'out-link'))
      await symlink(join(folder, 'real'), join(folder, 'in-link'))
      execFileSync('mkfifo', [join(folder, 'fifo')])
      const storage = new LocalStorage(folder, '')
      for (const name of ['out-link', 'in-link']) {
        await assert.rejects(
          downloadTo(storage, name, join(dir, 'out')),
          new RegExp(`${name} is a symlink; LOCAL storage does not follow links to objects`),
        )
      }
      await assert.rejects(downloadTo(storage, 'fifo', join(dir, 'out')), /fifo is not a file/)
      assert.equal((await downloadTo(storage, 'real', join(dir, 'out'))).size, 6)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('creates no folder outside the root through a symlinked folder, and follows a folder link that stays inside', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'dump.sql'), 'rows')
      const outside = join(dir, 'outside')
      await mkdir(outside)
      await mkdir(join(dir, 'root', 'real'), { recursive: true })
      await symlink(outside, join(dir, 'root', 'away'))
      await symlink(join(dir, 'root', 'real'), join(dir, 'root', 'alias'))
      await assert.rejects(
        new LocalStorage(join(dir, 'root'), 'away/deeper/').upload(join(dir, 'dump.sql'), 'x'),
        /away leads outside local_storage_root/,
      )
      await assert.rejects(
        new LocalStorage(join(dir, 'root'), 'away/').upload(join(dir, 'dump.sql'), 'x'),
        /away leads outside local_storage_root/,
      )
      assert.deepEqual(await readdir(outside), [])
      await new LocalStorage(join(dir, 'root'), 'alias/sub/').upload(join(dir, 'dump.sql'), 'x')
      assert.equal(await readFile(join(dir, 'root', 'real', 'sub', 'x'), 'utf8'), 'rows')
      assert.equal(await readlink(join(dir, 'root', 'alias')), join(dir, 'root', 'real'))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('uploads only a regular file from the job directory, never through a link', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      await symlink(join(dir, 'secret'), join(dir, 'dump.sql'))
      const storage = new LocalStorage(join(dir, 'root'), '')
      await assert.rejects(storage.upload(join(dir, 'dump.sql'), 'x'), /upload of x failed/)
      assert.deepEqual(await readdir(join(dir, 'root')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('abandon removes exactly the temporary files an upload of that name leaves, nothing else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      const folder = join(dir, 'root', 'pg')
      await mkdir(folder, { recursive: true })
      const hex = '0123456789abcdef'
      const leftOvers = [`.obj.partial-${hex}`, `.obj.meta.json.${hex}`, '.obj.partial']
      const kept = [
        'obj',
        '.obj.meta.json',
        `obj.partial-${hex}`,
        `.obj.partial-${hex}x`,
        '.obj.partial-zzzzzzzzzzzzzzzz',
        `.obj2.partial-${hex}`,
        `.obj.x.partial-${hex}`,
      ]
      for (const name of [...leftOvers, ...kept]) await writeFile(join(folder, name), name)
      await new LocalStorage(join(dir, 'root'), 'pg/').abandon('obj')
      assert.deepEqual((await readdir(folder)).sort(), [...kept].sort())
      await new LocalStorage(join(dir, 'root'), 'missing/').abandon('obj') // no folder: nothing to do
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
