// The backup pipe read into kept buffers: every byte arrives once and in order, whatever the
// consumer's pace, from at most three buffers, and a pipe closed without data ends at once.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openFifoForReading } from '../../../../src/util/pipes/fifo.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A real writer process: `bash` writes `size` pseudo-random bytes into the pipe in writes of
 * 7919-byte blocks (`dd`) and prints their SHA-256 on stderr.
 */
function writer(path: string, size: number): Promise<string> {
  const child = spawn(
    'bash',
    ['-c', `head -c ${size} /dev/urandom | tee >(sha256sum >&2) | dd of="$1" bs=7919 iflag=fullblock status=none`, 'writer', path],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => (err += chunk))
  return new Promise((resolve, reject) =>
    child.on('close', (code) => {
      // tee's process substitution may print after tee itself exits: wait for the digest line
      const digest = /^[0-9a-f]{64}/.exec(err)?.[0]
      if (code === 0 && digest) resolve(digest)
      else reject(new Error(`writer exited ${code}: ${err}`))
    }),
  )
}

async function readAll(chunks: AsyncIterator<Buffer>, pause: (index: number) => Promise<unknown>) {
  const hash = createHash('sha256')
  const buffers = new Set<ArrayBufferLike>()
  let bytes = 0
  for (let index = 0; ; index++) {
    const next = await chunks.next()
    if (next.done) break
    hash.update(next.value)
    bytes += next.value.length
    buffers.add(next.value.buffer)
    await pause(index) // the chunk is still ours until we ask for the next one
  }
  return { sha256: hash.digest('hex'), bytes, buffers: buffers.size }
}

describe('BACKUP_STREAM read into kept buffers', () => {
  for (const [name, pause] of [
    ['a consumer as fast as it can', async () => {}],
    ['a slow consumer (the pipe fills, reading pauses and resumes)', (i: number) => (i % 16 === 0 ? sleep(5) : Promise.resolve())],
  ] as const) {
    it(`passes every byte once and in order to ${name}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'osb-kept-'))
      const fifo = await openFifoForReading(join(dir, 'stream'))
      try {
        const size = 24 * 1024 * 1024 + 12345
        const written = writer(fifo.path, size)
        // the agent drops its keeper once the script exited, so the real end arrives
        const done = written.finally(() => fifo.releaseKeeper())
        const read = await readAll(fifo.chunks, pause)
        assert.equal(read.bytes, size)
        assert.equal(read.sha256, await done)
        assert.ok(read.buffers <= 3, `chunks came from ${read.buffers} buffers, expected at most 3`)
      } finally {
        fifo.dispose()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }

  it('ends at once when the script never writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osb-kept-'))
    const fifo = await openFifoForReading(join(dir, 'stream'))
    try {
      fifo.releaseKeeper()
      const next = await fifo.chunks.next()
      assert.equal(next.done, true)
    } finally {
      fifo.dispose()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
