// The named pipes of BACKUP_STREAM and RESTORE_STREAM: made exclusively, opened without
// following a link, and only ever the pipe the agent made (device and inode); a stream given up
// fails its reader instead of ending cleanly.
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import {
  closeSync,
  constants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../../src/errors.ts'
import { openFifoForReading, openFifoForWriting } from '../../../../src/util/pipes/fifo.ts'

describe('stream pipes', () => {
  const root = mkdtempSync(join(tmpdir(), 'osb-fifo-'))
  after(() => rmSync(root, { recursive: true, force: true }))
  let n = 0
  const fresh = () => {
    const dir = join(root, String(n++))
    mkdirSync(dir)
    return dir
  }

  for (const open of [openFifoForReading, openFifoForWriting]) {
    it(`${open.name}: a symlink planted at the pipe's name is replaced, never followed`, async () => {
      const dir = fresh()
      const target = join(dir, 'victim')
      writeFileSync(target, 'keep me', { mode: 0o644 })
      const path = join(dir, '.backup.stream')
      symlinkSync(target, path)
      const end = await open(path)
      try {
        assert.ok(lstatSync(path).isFIFO(), 'the name is the agent’s pipe now')
        assert.deepEqual({ dev: lstatSync(path).dev, ino: lstatSync(path).ino }, end.identity)
        assert.equal(readFileSync(target, 'utf8'), 'keep me')
        assert.equal(statSync(target).mode & 0o777, 0o644)
      } finally {
        end.dispose()
      }
    })

    it(`${open.name}: a name it cannot make is a JobError that names the pipe`, async () => {
      const dir = fresh()
      const path = join(dir, '.backup.stream')
      mkdirSync(path) // rm without recursion refuses a directory
      await assert.rejects(
        open(path),
        (error: Error) => error instanceof JobError && /cannot create the named pipe \.backup\.stream/.test(error.message),
      )
    })
  }

  it('the restore pipe never writes into a pipe swapped in under its name, or through a link to one', async () => {
    for (const swap of ['fifo', 'symlink'] as const) {
      const dir = fresh()
      const path = join(dir, '.restore.stream')
      const writer = await openFifoForWriting(path)
      rmSync(path) // the agent's pipe is nameless now; a new pipe may even get its inode number
      const other = join(dir, 'other')
      execFileSync('mkfifo', [swap === 'fifo' ? path : other])
      if (swap === 'symlink') symlinkSync(other, path)
      // a reader on the impostor: an open by name for writing would now succeed
      const reader = openSync(swap === 'fifo' ? path : other, constants.O_RDONLY | constants.O_NONBLOCK)
      try {
        await new Promise((resolve) => setTimeout(resolve, 100)) // several connect attempts
        assert.equal(writer.isConnected(), false, `${swap}: the agent did not connect to the impostor`)
        writer.dispose()
        await assert.rejects(writer.connected, /the restore script never opened RESTORE_STREAM/)
      } finally {
        closeSync(reader)
        writer.dispose()
      }
    }
  })

  it('the restore pipe connects once its reader opens it', async () => {
    const path = join(fresh(), '.restore.stream')
    const writer = await openFifoForWriting(path)
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    try {
      const socket = await writer.connected
      assert.equal(writer.isConnected(), true)
      await new Promise<void>((resolve, reject) => socket.write('dump', (error) => (error ? reject(error) : resolve())))
      const buffer = Buffer.alloc(16)
      assert.equal(buffer.subarray(0, readSync(reader, buffer)).toString(), 'dump')
    } finally {
      closeSync(reader)
      writer.dispose()
    }
  })

  it('the backup pipe ends with its writers; abandoned, its reader fails rather than see a clean end', async () => {
    const dir = fresh()
    const clean = await openFifoForReading(join(dir, 'clean'))
    const w1 = openSync(clean.path, constants.O_WRONLY | constants.O_NONBLOCK)
    writeSync(w1, 'all of it')
    closeSync(w1)
    clean.unlink()
    clean.releaseKeeper()
    const got: Buffer[] = []
    for (let next = await clean.chunks.next(); !next.done; next = await clean.chunks.next()) got.push(Buffer.from(next.value))
    assert.equal(Buffer.concat(got).toString(), 'all of it')
    await clean.ended
    clean.dispose()

    const cut = await openFifoForReading(join(dir, 'cut'))
    const w2 = openSync(cut.path, constants.O_WRONLY | constants.O_NONBLOCK)
    writeSync(w2, 'part of it')
    cut.releaseKeeper()
    cut.abandon('given up')
    closeSync(w2)
    await assert.rejects(
      (async () => {
        for (let next = await cut.chunks.next(); !next.done; next = await cut.chunks.next());
      })(),
      /given up/,
    )
    cut.dispose()
  })
})
