import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { PartBuffers, parts } from '../../../../src/storage/files/parts.ts'

async function* chunks(total: number, size: number): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(Math.min(size, total - sent), sent % 251)
}

describe('parts', () => {
  it('cuts a stream into sized parts, marks the last, and the bytes survive', async () => {
    const seen: { number: number; length: number; last: boolean }[] = []
    const collected: Buffer[] = []
    for await (const part of parts(chunks(25, 4), () => 10)) {
      seen.push({ number: part.number, length: part.data.length, last: part.last })
      collected.push(Buffer.from(part.data))
      part.release?.()
    }
    assert.deepEqual(seen, [
      { number: 1, length: 10, last: false },
      { number: 2, length: 10, last: false },
      { number: 3, length: 5, last: true },
    ])
    assert.deepEqual(Buffer.concat(collected), Buffer.concat(await Array.fromAsync(chunks(25, 4))))
  })

  it('reuses a released buffer for a later part instead of allocating one', async () => {
    const buffers = new PartBuffers()
    const used = new Set<ArrayBuffer>()
    for await (const part of parts(chunks(100, 7), () => 10, buffers)) {
      used.add(part.data.buffer as ArrayBuffer)
      part.release?.()
    }
    // one part held back (to know which is last) and one being filled: two buffers in all
    assert.ok(used.size <= 2, `${used.size} buffers for 10 parts`)
  })

  it('hashes each part as its bytes arrive, when asked, chunks straddling part boundaries included', async () => {
    const hex = (data: Buffer) => createHash('sha256').update(data).digest('hex')
    for (const total of [30, 25]) {
      const seen: { sha256: string | undefined; actual: string }[] = []
      for await (const part of parts(chunks(total, 7), () => 10, undefined, { sha256: true })) {
        seen.push({ sha256: part.sha256, actual: hex(part.data) })
        part.release?.()
      }
      assert.equal(seen.length, 3)
      for (const { sha256, actual } of seen) assert.equal(sha256, actual)
    }
    for await (const part of parts(chunks(25, 7), () => 10)) assert.equal(part.sha256, undefined)
  })

  it('never hands out a buffer that is still in use', async () => {
    const buffers = new PartBuffers()
    const held = [buffers.take(8), buffers.take(8)]
    assert.notEqual(held[0], held[1])
    buffers.give(held[0] as Buffer)
    assert.equal(buffers.take(8), held[0])
    assert.notEqual(buffers.take(8), held[1])
  })

  it('drops free buffers of a size no longer asked for (part sizes only grow)', () => {
    const buffers = new PartBuffers()
    const small = buffers.take(8)
    buffers.give(small)
    const big = buffers.take(16)
    assert.equal(big.length, 16)
    assert.notEqual(buffers.take(8), small)
  })
})
