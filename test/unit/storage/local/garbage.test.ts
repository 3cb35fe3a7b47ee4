// LOCAL's storage hygiene (collectGarbage) on a real folder: orphaned metadata files older than the
// grace removed, one whose object exists or that is younger kept, links planted as metadata (or as
// the destination's folder) never followed, other folders untouched, and the bounds kept.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { lstat, lutimes, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ENTRIES_PER_PAGE } from '../../../../src/storage/local/garbage.ts'
import { LocalStorage } from '../../../../src/storage/local/storage.ts'
import type { GarbageOptions } from '../../../../src/storage/storage.ts'

const HOUR = 3_600_000
const options = (more: Partial<GarbageOptions> = {}): GarbageOptions => ({
  graceMs: HOUR,
  maxPages: 10,
  deadline: Date.now() + 30_000,
  ...more,
})
const twoHoursAgo = () => new Date(Date.now() - 2 * HOUR)

async function withDir(test: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'osb-local-gc-'))
  try {
    await test(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Uploads `name` under `pg/` (object and metadata), then ages both by two hours. */
async function stored(dir: string, storage: LocalStorage, name: string): Promise<void> {
  await writeFile(join(dir, 'dump'), 'rows')
  await storage.upload(join(dir, 'dump'), name, { sha256: 'a'.repeat(64) })
  for (const file of [name, `.${name}.meta.json`]) await utimes(join(dir, 'root', 'pg', file), twoHoursAgo(), twoHoursAgo())
}

describe('LocalStorage.collectGarbage', () => {
  it('removes orphaned metadata older than the grace, and keeps the rest', async () => {
    await withDir(async (dir) => {
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      await stored(dir, storage, 'kept.osb')
      await stored(dir, storage, 'gone.osb')
      await rm(join(dir, 'root', 'pg', 'gone.osb'))
      await storage.upload(join(dir, 'dump'), 'young.osb', { sha256: 'b'.repeat(64) })
      await rm(join(dir, 'root', 'pg', 'young.osb')) // orphaned, but younger than the grace
      const interrupted = '.lost.osb.meta.json.0123456789abcdef'
      await writeFile(join(dir, 'root', 'pg', interrupted), '{"sha256":')
      await utimes(join(dir, 'root', 'pg', interrupted), twoHoursAgo(), twoHoursAgo())
      const size = (await lstat(join(dir, 'root', 'pg', '.gone.osb.meta.json'))).size

      const reclaimed = await storage.collectGarbage(options())
      assert.deepEqual(reclaimed, { objects: 2, bytes: size + 10, problems: [] })
      assert.deepEqual((await readdir(join(dir, 'root', 'pg'))).sort(), ['.kept.osb.meta.json', '.young.osb.meta.json', 'kept.osb'])
      assert.equal(JSON.parse(await readFile(join(dir, 'root', 'pg', '.kept.osb.meta.json'), 'utf8')).sha256, 'a'.repeat(64))
    })
  })

  it('removes the partial data of an upload whose recovery never ran, once older than the grace; a young one is an upload in progress', async () => {
    await withDir(async (dir) => {
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      await stored(dir, storage, 'kept.sql')
      const folder = join(dir, 'root', 'pg')
      const old = ['.lost.sql.partial-0123456789abcdef', '.older-agent.sql.partial']
      for (const name of old) {
        await writeFile(join(folder, name), 'half a dump')
        await utimes(join(folder, name), twoHoursAgo(), twoHoursAgo())
      }
      await writeFile(join(folder, '.writing.sql.partial-fedcba9876543210'), 'in progress')
      // not the agent's pattern: left alone whatever its age
      for (const name of ['.notes.partial-xyz', 'plain.partial-0123456789abcdef']) {
        await writeFile(join(folder, name), 'x')
        await utimes(join(folder, name), twoHoursAgo(), twoHoursAgo())
      }
      const reclaimed = await storage.collectGarbage(options())
      assert.deepEqual(reclaimed, { objects: 2, bytes: 22, problems: [] })
      assert.deepEqual((await readdir(folder)).sort(), [
        '.kept.sql.meta.json',
        '.notes.partial-xyz',
        '.writing.sql.partial-fedcba9876543210',
        'kept.sql',
        'plain.partial-0123456789abcdef',
      ])
    })
  })

  it('follows no link planted as metadata, and leaves other folders alone', async () => {
    await withDir(async (dir) => {
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')
      await mkdir(join(dir, 'root', 'pg'), { recursive: true })
      await mkdir(join(dir, 'root', 'other'))
      await writeFile(join(dir, 'precious'), 'outside the root')
      await utimes(join(dir, 'precious'), twoHoursAgo(), twoHoursAgo())
      const planted = join(dir, 'root', 'pg', '.missing.osb.meta.json')
      await symlink(join(dir, 'precious'), planted)
      await lutimes(planted, twoHoursAgo(), twoHoursAgo())
      const elsewhere = join(dir, 'root', 'other', '.missing.osb.meta.json')
      await writeFile(elsewhere, '{}')
      await utimes(elsewhere, twoHoursAgo(), twoHoursAgo())

      const reclaimed = await storage.collectGarbage(options({ graceMs: 0 }))
      assert.deepEqual(reclaimed, { objects: 0, bytes: 0, problems: [] })
      assert.ok((await lstat(planted)).isSymbolicLink(), 'the link itself is left')
      assert.equal(await readFile(join(dir, 'precious'), 'utf8'), 'outside the root')
      assert.equal(await readFile(elsewhere, 'utf8'), '{}')
    })
  })

  it('does not follow a destination folder that is a link out of the root', async () => {
    await withDir(async (dir) => {
      await mkdir(join(dir, 'root'))
      await mkdir(join(dir, 'outside'))
      await writeFile(join(dir, 'outside', '.x.meta.json'), '{}')
      await symlink(join(dir, 'outside'), join(dir, 'root', 'pg'))
      const reclaimed = await new LocalStorage(join(dir, 'root'), 'pg/').collectGarbage(options({ graceMs: 0 }))
      assert.equal(reclaimed.objects, 0)
      assert.match(reclaimed.problems.join('\n'), /leads outside local_storage_root/)
      assert.deepEqual(await readdir(join(dir, 'outside')), ['.x.meta.json'])
    })
  })

  it('finds nothing to do where the destination has no folder yet', async () => {
    await withDir(async (dir) => {
      assert.deepEqual(await new LocalStorage(join(dir, 'root'), 'pg/').collectGarbage(options()), { objects: 0, bytes: 0, problems: [] })
    })
  })

  it('stops at its listing pages and at its deadline, and says so', async () => {
    await withDir(async (dir) => {
      const folder = join(dir, 'root', 'pg')
      await mkdir(folder, { recursive: true })
      // One page and a bit of orphans: a pass of one page leaves some behind.
      const count = ENTRIES_PER_PAGE + 5
      for (let i = 0; i < count; i++) await writeFile(join(folder, `.o${i}.meta.json`), '{}')
      const storage = new LocalStorage(join(dir, 'root'), 'pg/')

      const late = await storage.collectGarbage(options({ graceMs: 0, deadline: Date.now() - 1 }))
      assert.equal(late.objects, 0)
      assert.match(late.problems.join('\n'), /stopped at its deadline; what is left waits for the next backup/)

      const onePage = await storage.collectGarbage(options({ graceMs: 0, maxPages: 1 }))
      assert.equal(onePage.objects, ENTRIES_PER_PAGE)
      assert.match(onePage.problems.join('\n'), /stopped at its 1 listing pages/)
      assert.equal((await readdir(folder)).length, 5)

      const rest = await storage.collectGarbage(options({ graceMs: 0, maxPages: 1 }))
      assert.deepEqual(rest, { objects: 5, bytes: 10, problems: [] })
    })
  })
})
