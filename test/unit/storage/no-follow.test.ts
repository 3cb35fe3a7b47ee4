// The upload side reads the job's backup file itself, never the target of a link swapped in
// place of it (a backup of /etc/shadow into the storage).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { digestFile } from '../../../src/storage/file-digest.ts'
import { sendFileRange } from '../../../src/storage/file-range.ts'

describe('reading a backup file for an upload', () => {
  it('refuses a symlink in the digest worker and in a streamed range, and reads the file itself', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-nofollow-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      await writeFile(join(dir, 'dump.sql'), 'rows')
      await symlink(join(dir, 'secret'), join(dir, 'link.sql'))
      await assert.rejects(digestFile({ path: join(dir, 'link.sql'), algorithm: 'sha256' }), /ELOOP/)
      const sent: Buffer[] = []
      await assert.rejects(sendFileRange({ path: join(dir, 'link.sql'), start: 0, length: 7 }, async (c) => void sent.push(c), () => {}), /ELOOP/)
      assert.equal(sent.length, 0)
      assert.equal(await digestFile({ path: join(dir, 'dump.sql'), algorithm: 'sha256' }), createHash('sha256').update('rows').digest('hex'))
      const read: Buffer[] = []
      await sendFileRange({ path: join(dir, 'dump.sql'), start: 0, length: 4 }, async (c) => void read.push(Buffer.from(c)), () => {})
      assert.equal(Buffer.concat(read).toString(), 'rows')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
