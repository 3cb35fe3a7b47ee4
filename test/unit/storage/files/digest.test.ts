// Digests of files/digest.ts (SHA-256 on the main thread, MD5 in worker threads): the same as node:crypto's on the
// main thread, whole file or a range; a short file, a missing file and an abort reject, and the
// pool goes on working after each.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../../src/errors.ts'
import { digestFile } from '../../../../src/storage/files/digest.ts'

const hex = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('hex')

describe('digestFile', () => {
  let dir: string
  let path: string
  // more than the worker's 1 MiB buffer, not a multiple of it
  const data = randomBytes(3 * 1024 * 1024 + 17)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-digest-'))
    path = join(dir, 'file')
    await writeFile(path, data)
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('hashes the whole file and ranges of it, several at once', async () => {
    const ranges = [
      { start: 0, length: 1024 * 1024 },
      { start: 1024 * 1024, length: 2 * 1024 * 1024 + 17 },
      { start: 5, length: 0 },
    ]
    const [whole, ...parts] = await Promise.all([
      digestFile({ path, algorithm: 'sha256' }),
      ...ranges.map((range) => digestFile({ path, algorithm: 'md5', range })),
    ])
    assert.equal(whole, hex('sha256', data))
    assert.deepEqual(
      parts,
      ranges.map((r) => hex('md5', data.subarray(r.start, r.start + r.length))),
    )
  })

  it('rejects a range the file does not hold, and a missing file', async () => {
    await assert.rejects(
      digestFile({ path, algorithm: 'md5', range: { start: data.length - 10, length: 20 } }),
      (error: Error) =>
        error instanceof JobError &&
        error.message === `${path} changed while it was uploaded: read 10 of 20 bytes (is something still writing it?)`,
    )
    await assert.rejects(digestFile({ path: join(dir, 'missing'), algorithm: 'sha256' }), { code: 'ENOENT' })
    assert.equal(await digestFile({ path, algorithm: 'sha256' }), hex('sha256', data))
  })

  it('stops on an abort, before or during the read, and the next digest still works', async () => {
    const aborted = AbortSignal.abort('cancelled')
    await assert.rejects(digestFile({ path, algorithm: 'sha256', signal: aborted }), /cancelled/)
    const abort = new AbortController()
    const running = digestFile({ path, algorithm: 'sha256', signal: abort.signal })
    abort.abort('cancelled later')
    await assert.rejects(running, (error: Error) => error instanceof JobError && error.message === 'cancelled later')
    assert.equal(await digestFile({ path, algorithm: 'md5' }), hex('md5', data))
  })
})
