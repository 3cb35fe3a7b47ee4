import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { gzipSync, zstdCompressSync } from 'node:zlib'
import { createDecoder, createEncoder } from '../../../src/integrity/codec.ts'
import { EncryptFrames, encryptionForBackup, wantsEncryption } from '../../../src/integrity/encryption.ts'
import { FRAME_BYTES, encodeHeader, type StreamHeader } from '../../../src/integrity/format.ts'
import { TRAILER_BYTES, TrailerDigest } from '../../../src/integrity/trailer.ts'

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of gen) parts.push(c)
  return Buffer.concat(parts)
}
const chunks = (data: Buffer, size = 65536) =>
  Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
    })(),
  )

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

/** A version-1 object as the encoder wrote it before the trailer: header (version 1, no trailer field), body. */
async function encodeV1(data: Buffer, compression: 'none' | 'zstd' | 'gzip', key: string): Promise<Buffer> {
  const crypto = wantsEncryption(key) ? encryptionForBackup(key) : undefined
  const header: StreamHeader = {
    format: 'osb',
    version: 1,
    compression,
    encryption: crypto?.encryption ?? { mode: 'none' },
    frame_bytes: FRAME_BYTES,
  }
  const headerBytes = encodeHeader(header)
  let body = compression === 'zstd' ? zstdCompressSync(data) : compression === 'gzip' ? gzipSync(data) : data
  if (crypto && header.encryption.mode !== 'none')
    body = await collect(chunks(body).pipe(new EncryptFrames(crypto.dataKey, header.encryption.nonce_prefix, headerBytes)))
  return Buffer.concat([headerBytes, body])
}

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
      it(`round-trips version 2 with compression ${compression} and key ${JSON.stringify(key)}, ending in the SHA-256 trailer`, async () => {
        const { encoded, decoded } = await roundTrip(data, compression, key)
        assert.ok(decoded.equals(data))
        const header = JSON.parse(encoded.subarray(8, 8 + encoded.readUInt32BE(4)).toString()) as StreamHeader
        assert.equal(header.version, 2)
        assert.equal(header.trailer, 'sha256')
        const trailer = encoded.subarray(encoded.length - TRAILER_BYTES).toString('hex')
        assert.equal(trailer, sha256(encoded.subarray(0, encoded.length - TRAILER_BYTES)))
      })

      it(`still decodes a version-1 object (no trailer) with compression ${compression} and key ${JSON.stringify(key)}`, async () => {
        const v1 = await encodeV1(data, compression, key)
        let verified: string | undefined
        const decoded = await collect(
          createDecoder(key, { storedSha256: sha256(v1), onVerified: (r) => (verified = r.checksum) })(chunks(v1, 77_777)),
        )
        assert.ok(decoded.equals(data))
        assert.equal(verified, sha256(v1))
        // the stored digest of a version-1 object is still checked against the whole object
        await assert.rejects(
          collect(createDecoder(key, { storedSha256: 'ab'.repeat(32) })(chunks(v1))),
          /^JobError: checksum mismatch|checksum mismatch/,
        )
      })
    }
  }

  it('reports the trailer as the checksum, compares it with a stored digest, and the encoder knows it', async () => {
    const encoder = createEncoder({ compression: 'zstd', encryptionKey: 'pw' })
    const encoded = await collect(encoder.encode(chunks(data)))
    const trailer = encoded.subarray(encoded.length - TRAILER_BYTES).toString('hex')
    assert.equal(encoder.sha256(), trailer)
    let reported: string | undefined
    await collect(createDecoder('pw', { storedSha256: trailer.toUpperCase(), onVerified: (r) => (reported = r.checksum) })(chunks(encoded)))
    assert.equal(reported, trailer)
    await assert.rejects(
      collect(createDecoder('pw', { storedSha256: sha256(encoded) })(chunks(encoded))),
      /checksum mismatch: .*stored metadata/,
    )
  })

  it('a flipped bit in the trailer fails at the end, for every key mode and compression', async () => {
    for (const compression of ['none', 'gzip'] as const) {
      for (const key of ['', 'pw']) {
        const { encoded } = await roundTrip(data, compression, key)
        const flipped = Buffer.from(encoded)
        flipped[flipped.length - 5] = (flipped[flipped.length - 5] as number) ^ 1
        await assert.rejects(collect(createDecoder(key)(chunks(flipped))), /checksum mismatch: .*trailer/, `${compression} ${key}`)
      }
    }
  })

  it('a flipped bit in an unencrypted body fails at the end with a checksum mismatch', async () => {
    const { encoded } = await roundTrip(data, 'none', '')
    const flipped = Buffer.from(encoded)
    flipped[encoded.length - 1000] = (flipped[encoded.length - 1000] as number) ^ 1
    await assert.rejects(collect(createDecoder('')(chunks(flipped))), /checksum mismatch/)
  })

  it('a version-2 object cut anywhere never decodes: in the body, inside the trailer, right before it', async () => {
    for (const [compression, key] of [
      ['none', ''],
      ['zstd', ''],
      ['gzip', 'pw'],
      ['none', 'pw'],
    ] as const) {
      const { encoded } = await roundTrip(data.subarray(0, FRAME_BYTES + 5000), compression, key)
      const headerEnd = 8 + encoded.readUInt32BE(4)
      for (const cut of [
        headerEnd,
        headerEnd + 1,
        headerEnd + 5000,
        Math.floor(encoded.length / 2),
        encoded.length - TRAILER_BYTES - 1,
        encoded.length - TRAILER_BYTES,
        encoded.length - TRAILER_BYTES + 1,
        encoded.length - 1,
      ]) {
        await assert.rejects(
          collect(createDecoder(key)(chunks(encoded.subarray(0, cut), 4096))),
          /checksum mismatch|failed authentication|truncated|unexpected end|incomplete|corrupt/i,
          `${compression} ${key} cut at ${cut} of ${encoded.length}`,
        )
      }
    }
  })

  it('without verification (a file-mode restore checked the download) it still strips the trailer', async () => {
    const small = randomBytes(20_000)
    const { encoded } = await roundTrip(small, 'none', '')
    for (const size of [1, 31, 32, 33, 4096]) {
      const decoded = await collect(createDecoder('', { verify: false })(chunks(encoded, size)))
      assert.ok(decoded.equals(small), `chunks of ${size}`)
      // the same for the verifying decoder
      assert.ok((await collect(createDecoder('')(chunks(encoded, size)))).equals(small), `verified, chunks of ${size}`)
    }
  })

  it('refuses a version-2 header without the trailer field, and a version-1 header with one', async () => {
    for (const header of [{ version: 2 }, { version: 1, trailer: 'sha256' }, { version: 3, trailer: 'sha256' }]) {
      const bytes = encodeHeader({
        format: 'osb',
        compression: 'none',
        encryption: { mode: 'none' },
        frame_bytes: FRAME_BYTES,
        ...header,
      } as StreamHeader)
      await assert.rejects(
        collect(createDecoder('')(chunks(Buffer.concat([bytes, Buffer.alloc(64)])))),
        /corrupt|unsupported/,
        JSON.stringify(header),
      )
    }
  })

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
    assert.throws(
      () =>
        createEncoder({
          compression: 'none',
          encryptionKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\nxx\n-----END PGP PUBLIC KEY BLOCK-----',
        }),
      /PGP/,
    )
  })

  it('detects a wrong passphrase, truncation, a flipped bit and dropped frames', async () => {
    const { encoded } = await roundTrip(data, 'none', 'right')
    await assert.rejects(collect(createDecoder('wrong')(chunks(encoded))), /failed authentication/)
    await assert.rejects(
      collect(createDecoder('right')(chunks(encoded.subarray(0, encoded.length - 100)))),
      /failed authentication|truncated|checksum mismatch: .*cut short/,
    )
    const headerEnd = encoded.indexOf('}') + 1
    // an attacker who also rewrites the trailer: the frames' authentication still refuses
    const resealed = (body: Buffer) => Buffer.concat([body, createHash('sha256').update(body).digest()])
    const cutAtFrame = encoded.subarray(0, headerEnd + FRAME_BYTES + 16)
    await assert.rejects(collect(createDecoder('right')(chunks(resealed(cutAtFrame)))), /failed authentication/)
    await assert.rejects(collect(createDecoder('right')(chunks(cutAtFrame))), /checksum mismatch/)
    const flipped = Buffer.from(encoded.subarray(0, encoded.length - TRAILER_BYTES))
    flipped[headerEnd + 10] = (flipped[headerEnd + 10] as number) ^ 1
    await assert.rejects(collect(createDecoder('right')(chunks(resealed(flipped)))), /failed authentication at frame 0/)
  })

  it('TrailerDigest gives the whole digest and the digest before the last 32 bytes, however the bytes arrive', () => {
    const bytes = randomBytes(5000)
    for (const size of [1, 7, 31, 32, 33, 1000, 5000]) {
      const digest = new TrailerDigest()
      for (let i = 0; i < bytes.length; i += size) digest.update(bytes.subarray(i, i + size))
      const result = digest.digest()
      assert.equal(result.whole, sha256(bytes), `chunks of ${size}`)
      assert.equal(result.beforeTrailer, sha256(bytes.subarray(0, bytes.length - 32)))
      assert.equal(result.trailer, bytes.subarray(bytes.length - 32).toString('hex'))
      assert.equal(result.size, bytes.length)
    }
    const short = new TrailerDigest()
    short.update(bytes.subarray(0, 31))
    assert.equal(short.digest().trailer, undefined)
  })

  it('refuses what is not a streamed backup', async () => {
    await assert.rejects(collect(createDecoder('')(chunks(Buffer.from('plain dump data')))), /OSB1/)
  })
})
