// The watch on directory_state: each way of losing the store (the folder removed, moved, replaced
// by a symlink; a file of the store removed or renamed) leads to a check, also after a first
// check (the watches follow the path, not the folder they started on).
import { afterEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { watchStoreDirectory, type StoreWatch } from '../../../src/jobs/store-watch.ts'

/** Long enough for a loaded machine; a watch that misses a change fails here instead of hanging. */
const NOTICED_WITHIN_MS = 20_000

let watch: StoreWatch | undefined
afterEach(() => watch?.close())

/** A state folder with the store's files, watched; `checked()` resolves at the next check. */
function watched(): { state: string; parent: string; checked: () => Promise<void>; checks: () => number } {
  const parent = mkdtempSync(join(tmpdir(), 'store-watch-'))
  const state = join(parent, 'state')
  mkdirSync(state)
  for (const file of ['jobs.sqlite', 'jobs.sqlite-wal']) writeFileSync(join(state, file), 'x')
  let count = 0
  let waiting: (() => void) | undefined
  watch = watchStoreDirectory(
    state,
    () => {
      count++
      waiting?.()
    },
    { settleMs: 20 },
  )
  const checked = () =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no check within ${NOTICED_WITHIN_MS} ms`)), NOTICED_WITHIN_MS)
      waiting = () => {
        clearTimeout(timer)
        waiting = undefined
        resolve()
      }
    })
  return { state, parent, checked, checks: () => count }
}

/** What the store does on a check that finds it gone: makes the folder and its files again. */
function remake(state: string): void {
  mkdirSync(state, { recursive: true })
  for (const file of ['jobs.sqlite', 'jobs.sqlite-wal']) writeFileSync(join(state, file), 'x')
}

const losses: [string, (state: string, parent: string) => void][] = [
  ['the folder removed', (state) => rmSync(state, { recursive: true })],
  ['the folder moved away', (state) => renameSync(state, `${state}.old`)],
  [
    'the folder moved away and a symlink to another put at its name',
    (state, parent) => {
      renameSync(state, `${state}.old`)
      mkdirSync(join(parent, 'elsewhere'))
      symlinkSync(join(parent, 'elsewhere'), state)
    },
  ],
  ['the WAL file removed', (state) => rmSync(join(state, 'jobs.sqlite-wal'))],
  ['the database file renamed', (state) => renameSync(join(state, 'jobs.sqlite'), join(state, 'jobs.sqlite.bak'))],
]

describe('watchStoreDirectory', () => {
  for (const [what, lose] of losses) {
    it(`${what}: a check follows, and so does the same loss after it`, async () => {
      const { state, parent, checked } = watched()
      let next = checked()
      lose(state, parent)
      await next
      // the store made again (as the registry's check does), then lost again the same way
      rmSync(`${state}.old`, { recursive: true, force: true })
      rmSync(join(parent, 'elsewhere'), { recursive: true, force: true })
      rmSync(state, { recursive: true, force: true })
      remake(state)
      next = checked()
      await next // the remaking itself may be the change noticed; what matters is a check after it
      next = checked()
      lose(state, parent)
      await next
    })
  }

  it('a symlink at its name pointed at another folder (the folder itself untouched): a check follows', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'store-watch-'))
    const state = join(parent, 'state')
    for (const target of ['a', 'b']) remake(join(parent, target))
    symlinkSync(join(parent, 'a'), state)
    let resolve: () => void = () => {}
    const next = new Promise<void>((r) => (resolve = r))
    watch = watchStoreDirectory(state, () => resolve(), { settleMs: 20 })
    symlinkSync(join(parent, 'b'), `${state}.new`)
    renameSync(`${state}.new`, state) // as `ln -sfn` does: the name now leads to b
    await Promise.race([next, new Promise((_, reject) => setTimeout(() => reject(new Error('no check')), NOTICED_WITHIN_MS))])
  })

  it('a folder that is not there at first is watched once it is made', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'store-watch-'))
    const state = join(parent, 'state')
    let checks = 0
    let resolve: () => void = () => {}
    watch = watchStoreDirectory(
      state,
      () => {
        checks++
        resolve()
      },
      { settleMs: 20 },
    )
    let next = new Promise<void>((r) => (resolve = r))
    remake(state)
    await next
    next = new Promise<void>((r) => (resolve = r))
    rmSync(join(state, 'jobs.sqlite-wal'))
    await next
    assert.ok(checks >= 2)
  })

  it('closed, it checks no more and keeps nothing open', async () => {
    const { state, checks } = watched()
    watch?.close()
    const before = checks()
    rmSync(state, { recursive: true })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(checks(), before)
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length, 0)
  })
})
