import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { createDecoder, createEncoder } from '../../../src/integrity/codec.ts'
import { FRAME_BYTES } from '../../../src/integrity/format.ts'

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of gen) parts.push(c)
  return Buffer.concat(parts)
}
const chunks = (data: Buffer, size = 65536) => Readable.from((function* () { for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size) })())

async function roundTrip(data: Buffer, compression: 'none' | 'zstd' | 'gzip', backupKey: string, restoreKey = backupKey) {
  const { encode } = createEncoder({ compression, encryptionKey: backupKey })
  const encoded = await collect(encode(chunks(data)))
  const decoded = await collect(createDecoder(restoreKey)(chunks(encoded, 100_000)))
  return { encoded, decoded }
}

describe('the .osb codec', () => {
  const data = Buffer.concat([randomBytes(FRAME_BYTES + 12345), Buffer.alloc(FRAME_BYTES, 7)])
  for (const compression of ['none', 'zstd', 'gzip'] as const) {
    for (const key of ['', 'none', 'a passphrase']) {
      it(`round-trips with compression ${compression} and key ${JSON.stringify(key)}`, async () => {
        const { decoded } = await roundTrip(data, compression, key)
        assert.ok(decoded.equals(data))
      })
    }
  }

  it('round-trips the edge sizes: empty, exactly one frame, one frame and a byte', async () => {
    for (const size of [0, 1, FRAME_BYTES, FRAME_BYTES + 1, 2 * FRAME_BYTES]) {
      const input = randomBytes(size)
      assert.ok((await roundTrip(input, 'none', 'pw')).decoded.equals(input), `size ${size}`)
    }
  })

  it('round-trips with X25519 and RSA key pairs, and the backup side cannot decrypt', async () => {
    for (const type of ['x25519', 'rsa'] as const) {
      const pair = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('x25519')
      const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString()
      const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      const { decoded, encoded } = await roundTrip(data, 'zstd', publicPem, privatePem)
      assert.ok(decoded.equals(data), type)
      await assert.rejects(collect(createDecoder(publicPem)(chunks(encoded))), /needs the matching PEM private key/)
    }
  })

  it('refuses keys it cannot use for a backup', () => {
    const pair = generateKeyPairSync('x25519')
    const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    assert.throws(() => createEncoder({ compression: 'none', encryptionKey: privatePem }), /is a private key/)
    assert.throws(() => createEncoder({ compression: 'none', encryptionKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n-----END PGP PUBLIC KEY BLOCK-----' }), /PGP/)
  })

  it('detects a wrong passphrase, truncation, a flipped bit and dropped frames', async () => {
    const { encoded } = await roundTrip(data, 'none', 'right')
    await assert.rejects(collect(createDecoder('wrong')(chunks(encoded))), /failed authentication/)
    await assert.rejects(collect(createDecoder('right')(chunks(encoded.subarray(0, encoded.length - 100)))), /failed authentication|truncated/)
    const headerEnd = encoded.indexOf('}') + 1
    const cutAtFrame = encoded.subarray(0, headerEnd + FRAME_BYTES + 16)
    await assert.rejects(collect(createDecoder('right')(chunks(cutAtFrame))), /failed authentication/)
    const flipped = Buffer.from(encoded)
    flipped[headerEnd + 10] = (flipped[headerEnd + 10] as number) ^ 1
    await assert.rejects(collect(createDecoder('right')(chunks(flipped))), /failed authentication at frame 0/)
  })

  it('refuses what is not a streamed backup', async () => {
    await assert.rejects(collect(createDecoder('')(chunks(Buffer.from('plain dump data')))), /OSB1/)
  })
})
