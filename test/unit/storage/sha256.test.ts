// The SigV4 body hash the S3 client uses: worker-hashed bodies (shared part buffers and plain
// ones), synchronous small bodies and HMACs all agree with node:crypto, and reset() starts over.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { digestBytes } from '../../../src/storage/file-digest.ts'
import { OffThreadSha256 } from '../../../src/storage/sha256.ts'

const sha256 = (...chunks: Uint8Array[]) => {
  const hash = createHash('sha256')
  for (const chunk of chunks) hash.update(chunk)
  return hash.digest()
}

describe('OffThreadSha256', () => {
  it('hashes a body in a SharedArrayBuffer by a worker, in place, without changing it', async () => {
    const part = Buffer.from(new SharedArrayBuffer(1024 * 1024 + 3))
    randomBytes(part.length).copy(part)
    const before = Buffer.from(part)
    const hash = new OffThreadSha256()
    hash.update(part)
    assert.deepEqual(Buffer.from(await hash.digest()), sha256(before))
    assert.deepEqual(part, before)
  })

  it('hashes large plain bodies, several chunks, small bodies and strings the same as node:crypto', async () => {
    const a = randomBytes(300 * 1024)
    const b = randomBytes(5)
    const many = new OffThreadSha256()
    many.update(a)
    many.update(b)
    assert.deepEqual(Buffer.from(await many.digest()), sha256(a, b))
    const small = new OffThreadSha256()
    small.update('UNSIGNED-PAYLOAD')
    assert.deepEqual(Buffer.from(await small.digest()), sha256(Buffer.from('UNSIGNED-PAYLOAD')))
    small.reset()
    assert.deepEqual(Buffer.from(await small.digest()), sha256(), 'reset() forgets what was added')
  })

  it('is an HMAC when given a secret', async () => {
    const hmac = new OffThreadSha256('secret')
    hmac.update('string to sign')
    assert.deepEqual(Buffer.from(await hmac.digest()), createHmac('sha256', 'secret').update('string to sign').digest())
  })

  it('runs many digests at once, each with its own answer', async () => {
    const bodies = Array.from({ length: 6 }, () => randomBytes(512 * 1024))
    const digests = await Promise.all(bodies.map((body) => digestBytes(body, 'sha256')))
    assert.deepEqual(digests, bodies.map((body) => sha256(body)))
  })
})
