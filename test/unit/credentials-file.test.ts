// The demo's credentials file, written by an agent that runs as root: never through a link.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureCredentials, readCredentials } from '../../src/credentials-file.ts'

function scratch(run: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osb-credentials-'))
    try {
      await run(dir)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

describe('demo credentials file', () => {
  it(
    'a dangling symlink at its name is replaced, its target never created',
    scratch(async (dir) => {
      const path = join(dir, 'var', 'credentials')
      const target = join(dir, 'elsewhere')
      await ensureCredentials(join(dir, 'var', 'first')) // makes var/
      symlinkSync(target, path)
      const { created, credentials } = await ensureCredentials(path)
      assert.equal(created, true)
      assert.equal(existsSync(target), false)
      assert.ok(lstatSync(path).isFile())
      assert.equal(statSync(path).mode & 0o777, 0o600)
      assert.deepEqual(await readCredentials(path), credentials)
    }),
  )

  it(
    'a symlink to valid credentials is neither used nor chmod-ed through',
    scratch(async (dir) => {
      const target = join(dir, 'other-file')
      writeFileSync(target, 'client_username=u\nclient_password=their-password\n', { mode: 0o644 })
      const path = join(dir, 'credentials')
      symlinkSync(target, path)
      assert.equal(await readCredentials(path), undefined)
      const { created, credentials } = await ensureCredentials(path)
      assert.equal(created, true)
      assert.notEqual(credentials.password, 'their-password')
      assert.equal(statSync(target).mode & 0o777, 0o644)
      assert.equal(readFileSync(target, 'utf8'), 'client_username=u\nclient_password=their-password\n')
      assert.ok(lstatSync(path).isFile())
    }),
  )

  it(
    'an existing file of its own is kept and made 0600',
    scratch(async (dir) => {
      const path = join(dir, 'credentials')
      writeFileSync(path, 'client_username=u\nclient_password=mine-12345\n', { mode: 0o644 })
      const { created, credentials } = await ensureCredentials(path)
      assert.equal(created, false)
      assert.equal(credentials.password, 'mine-12345')
      assert.equal(statSync(path).mode & 0o777, 0o600)
    }),
  )
})
