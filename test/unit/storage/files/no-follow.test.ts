// The upload side reads the job's backup file itself, never the target of a link swapped in
// place of it (a backup of /etc/shadow into the storage).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { link, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { digestFile } from '../../../../src/storage/files/digest.ts'
import { openBackupFile, sendFileRange } from '../../../../src/storage/files/backup-file.ts'
import { LocalStorage } from '../../../../src/storage/local/storage.ts'
import { execFileSync } from 'node:child_process'

/** The digest worker, the backup file's opener and the range sender all refuse `path` with `message`. */
async function assertEveryReaderRefuses(path: string, message: RegExp): Promise<void> {
  await assert.rejects(digestFile({ path, algorithm: 'sha256' }), message)
  await assert.rejects(openBackupFile(path), message)
  await assert.rejects(
    sendFileRange(
      { path, start: 0, length: 4 },
      async () => {},
      () => {},
    ),
    message,
  )
}

describe('reading a backup file for an upload', () => {
  it('refuses a symlink in the digest worker and in a streamed range, and reads the file itself', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-nofollow-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      await writeFile(join(dir, 'dump.sql'), 'rows')
      await symlink(join(dir, 'secret'), join(dir, 'link.sql'))
      await assert.rejects(digestFile({ path: join(dir, 'link.sql'), algorithm: 'sha256' }), /ELOOP/)
      const sent: Buffer[] = []
      await assert.rejects(
        sendFileRange(
          { path: join(dir, 'link.sql'), start: 0, length: 7 },
          async (c) => void sent.push(c),
          () => {},
        ),
        /ELOOP/,
      )
      assert.equal(sent.length, 0)
      assert.equal(
        await digestFile({ path: join(dir, 'dump.sql'), algorithm: 'sha256' }),
        createHash('sha256').update('rows').digest('hex'),
      )
      const read: Buffer[] = []
      await sendFileRange(
        { path: join(dir, 'dump.sql'), start: 0, length: 4 },
        async (c) => void read.push(Buffer.from(c)),
        () => {},
      )
      assert.equal(Buffer.concat(read).toString(), 'rows')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a FIFO (or a device) swapped in place of the file, without waiting for a writer', async () => {
    // Before, the digest worker's open of a FIFO waited for a writer forever: the upload hung,
    // and the agent could not even exit (a worker thread blocked in open(2) cannot be terminated).
    const dir = await mkdtemp(join(tmpdir(), 'osb-nofollow-'))
    try {
      execFileSync('mkfifo', [join(dir, 'dump.sql')])
      const path = join(dir, 'dump.sql')
      const message = /^JobError: the backup file dump\.sql is no longer a regular file \(a process replaced it while it was uploaded\)$/
      await assertEveryReaderRefuses(path, message)
      await assert.rejects(
        new LocalStorage(join(dir, 'objects'), '').upload(path, 'dump.sql'),
        /the backup file dump\.sql is no longer a regular file/,
      )
      await assert.rejects(digestFile({ path: '/dev/zero', algorithm: 'sha256' }), /the backup file zero is no longer a regular file/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('refuses a backup file that has a second hard link when it is opened (a link to a file outside swapped in)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'osb-nofollow-'))
    try {
      await writeFile(join(dir, 'secret'), 'outside')
      await link(join(dir, 'secret'), join(dir, 'dump.sql'))
      const path = join(dir, 'dump.sql')
      const message =
        /^JobError: the backup file dump\.sql now has 2 hard links \(a process replaced it with a link to another file while it was uploaded\?\); it is not uploaded$/
      await assertEveryReaderRefuses(path, message)
      await assert.rejects(new LocalStorage(join(dir, 'objects'), '').upload(path, 'dump.sql'), /now has 2 hard links/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
