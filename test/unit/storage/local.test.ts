import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, symlink, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalStorage } from '../../../src/storage/local.ts'
import { JobError } from '../../../src/errors.ts'

describe('LocalStorage', () => {
  it('uploads under the root with the prefix and downloads it back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'dump.sql'), 'rows')
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      let requests = 0
      await storage.upload(join(dir, 'dump.sql'), 'dump.sql', { onRequest: () => requests++ })
      assert.equal(await readFile(join(dir, 'root', 'pg', 'dump.sql'), 'utf8'), 'rows')
      const { size } = await storage.download('dump.sql', join(dir, 'back.sql'))
      assert.equal(size, 4)
      assert.equal(await readFile(join(dir, 'back.sql'), 'utf8'), 'rows')
      assert.equal(requests, 1)
      await assert.rejects(storage.download('missing.sql', join(dir, 'x')), (e: Error) => e instanceof JobError && /no such object/.test(e.message))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses names that leave the root, also through a symlink', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-local-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      for (const [prefix, name] of [['../', 'secret'], ['', '..'], ['a/../../', 'secret'], ['/', 'etc']] as const) {
        await assert.rejects(new LocalStorage(join(dir, 'root'), prefix).download(name, join(dir, 'x')), JobError, `${prefix}${name}`)
      }
      await mkdir(join(dir, 'root'))
      await symlink(dir, join(dir, 'root', 'link'))
      await assert.rejects(new LocalStorage(join(dir, 'root'), 'link/').download('secret', join(dir, 'x')), /outside local_storage_root/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
