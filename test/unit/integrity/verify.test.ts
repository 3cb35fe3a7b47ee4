// verifyObject (src/integrity/verify.ts) over in-memory objects: real `.osb` objects from the
// encoder, plain files, digests and metadata as a storage would give them, and chunk boundaries
// anywhere (a storage delivers whatever sizes it likes).
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { JobError } from '../../../src/errors.ts'
import { createEncoder } from '../../../src/integrity/codec.ts'
import { FRAME_BYTES, TAG_BYTES, encodeHeader, type Compression } from '../../../src/integrity/format.ts'
import { TRAILER_BYTES } from '../../../src/integrity/trailer.ts'
import { newVerificationReport, verifyObject, type VerifyOptions } from '../../../src/integrity/verify.ts'
import type { ObjectReader } from '../../../src/storage/storage.ts'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const PASSPHRASE = 'unit-verify-passphrase'
/** Random (incompressible) then zeros: the compressors have work on both. */
const dump = (bytes: number) => Buffer.concat([randomBytes(Math.ceil(bytes / 2)), Buffer.alloc(Math.floor(bytes / 2))])

async function encode(data: Buffer, compression: Compression, encryptionKey = ''): Promise<{ object: Buffer; headerBytes: number }> {
  const encoder = createEncoder({ compression, encryptionKey })
  const parts: Buffer[] = []
  for await (const chunk of encoder.encode(Readable.from([data]))) parts.push(Buffer.from(chunk))
  const object = Buffer.concat(parts)
  assert.equal(object.subarray(-TRAILER_BYTES).toString('hex'), encoder.sha256())
  return { object, headerBytes: encodeHeader(encoder.header).length }
}

/** The object split into chunks of `size`, or at the given offsets. */
function split(object: Buffer, at: number | number[]): Buffer[] {
  const cuts = typeof at === 'number' ? Array.from({ length: Math.ceil(object.length / at) }, (_, i) => i * at) : [0, ...at]
  return cuts.map((from, i) => object.subarray(from, cuts[i + 1] ?? object.length)).filter((c) => c.length > 0)
}

function reader(chunks: Buffer[], stored: { sha256?: string; metadata?: Record<string, string> } = {}): ObjectReader {
  return {
    sha256: stored.sha256,
    size: chunks.reduce((n, c) => n + c.length, 0),
    metadata: stored.metadata ?? {},
    chunks: (async function* () {
      yield* chunks
    })(),
  }
}

/** Replaces the trailer with the SHA-256 of the bytes before it: damage the digest cannot see. */
function withRecomputedTrailer(object: Buffer): Buffer {
  const body = object.subarray(0, object.length - TRAILER_BYTES)
  return Buffer.concat([body, createHash('sha256').update(body).digest()])
}

function flipByte(object: Buffer, at: number): Buffer {
  const copy = Buffer.from(object)
  copy[at] = (copy[at] as number) ^ 0x01
  return copy
}

async function verify(filename: string, object: ObjectReader, options: Partial<VerifyOptions> = {}) {
  const report = newVerificationReport(filename)
  const seen: number[] = []
  const outcome = await verifyObject(object, report, {
    filename,
    encryptionKey: '',
    requireChecksum: false,
    onProgress: (n) => seen.push(n),
    ...options,
  })
  return { outcome, report, seen }
}

describe('verifyObject: a plain file', () => {
  const data = dump(300_000)

  it('passes a clean object against its stored digest, reporting every byte read', async () => {
    const { outcome, report, seen } = await verify('db.sql', reader(split(data, 65536), { sha256: sha256(data) }))
    assert.equal(outcome.failure, undefined)
    assert.equal(outcome.checksumVerified, true)
    assert.equal(outcome.checksum, sha256(data))
    assert.deepEqual(report, { bytes_read: data.length, format: 'file', frames_authenticated: null })
    assert.equal(seen.length, 5, 'progress per chunk')
    assert.equal(seen.at(-1), data.length)
  })

  it('fails a wrong stored digest as a checksum mismatch over the whole object (no offset)', async () => {
    const stored = sha256(Buffer.from('something else'))
    const { outcome, report } = await verify('db.sql', reader([data], { sha256: stored }))
    assert.ok(outcome.failure instanceof JobError)
    assert.match(
      outcome.failure.message,
      new RegExp(
        `^checksum mismatch: db.sql should have SHA-256 ${stored} \\(the digest stored with it\\) but its ${data.length} stored bytes have ${sha256(data)}`,
      ),
    )
    assert.equal(outcome.checksumVerified, false)
    assert.equal(outcome.checksum, stored)
    assert.deepEqual(report.failure, { check: 'checksum', message: outcome.failure.message, offset: null, frame: null })
  })

  it('without any digest: passes unverified, or fails with require_checksum', async () => {
    const lenient = await verify('db.sql', reader([data]))
    assert.equal(lenient.outcome.failure, undefined)
    assert.equal(lenient.outcome.checksumVerified, false)
    assert.equal(lenient.outcome.checksum, undefined)
    assert.equal(lenient.report.failure, undefined)
    assert.equal(lenient.report.bytes_read, data.length, 'read to the end all the same')

    const strict = await verify('db.sql', reader([data]), { requireChecksum: true })
    assert.match(strict.outcome.failure?.message ?? '', /db\.sql has no stored checksum and require_checksum is true/)
    assert.equal(strict.report.failure?.check, 'checksum')
  })

  it("expected digests (the upload's, the agent's record) are checked besides the stored one, each naming its source", async () => {
    const expected = (value: string) => ({ expected: [{ sha256: value, source: "the agent's record of backup b1" }] })
    const wrongStored = await verify('db.sql', reader([data], { sha256: '0'.repeat(64) }), expected(sha256(data)))
    assert.match(wrongStored.outcome.failure?.message ?? '', /should have SHA-256 0{64} \(the digest stored with it\)/)
    assert.equal(wrongStored.outcome.checksumVerified, false)
    const wrongExpected = await verify('db.sql', reader([data], { sha256: sha256(data) }), expected('f'.repeat(64)))
    assert.match(wrongExpected.outcome.failure?.message ?? '', /should have SHA-256 f{64} \(the agent's record of backup b1\)/)
    assert.equal(wrongExpected.outcome.checksumVerified, false)
    // no stored digest: the expected one alone verifies
    const onlyExpected = await verify('db.sql', reader([data]), expected(sha256(data)))
    assert.equal(onlyExpected.outcome.failure, undefined)
    assert.equal(onlyExpected.outcome.checksumVerified, true)
    assert.equal(onlyExpected.outcome.checksum, sha256(data))
  })

  it('a storage failing mid-read is thrown as it is, not reported as a finding about the object', async () => {
    const object = reader([])
    object.chunks = (async function* () {
      yield data.subarray(0, 1000)
      throw new Error('connection reset by the storage')
    })()
    const report = newVerificationReport('db.sql')
    await assert.rejects(verifyObject(object, report, { filename: 'db.sql', encryptionKey: '', requireChecksum: true }), /connection reset/)
    assert.equal(report.failure, undefined)
    assert.equal(report.bytes_read, 1000)
  })
})

describe('verifyObject: a streamed .osb object', () => {
  const data = dump(200_000)

  it('passes a clean version-2 object without a key: format and trailer checked, decoded to its end', async () => {
    const { object } = await encode(data, 'zstd')
    const trailer = object.subarray(-TRAILER_BYTES).toString('hex')
    // S3: no stored digest, the trailer carries it
    const { outcome, report } = await verify('b.osb', reader(split(object, 65536)))
    assert.equal(outcome.failure, undefined)
    assert.equal(outcome.checksumVerified, true)
    assert.equal(outcome.checksum, trailer)
    assert.deepEqual(report, {
      bytes_read: object.length,
      format: 'osb',
      format_version: 2,
      compression: 'zstd',
      encryption: 'none',
      frames_authenticated: null,
      decoded_bytes: data.length,
    })
    // Swift and LOCAL store the trailer's value too: it must agree
    const stored = await verify('b.osb', reader([object], { sha256: trailer }))
    assert.equal(stored.outcome.failure, undefined)
    const other = await verify('b.osb', reader([object], { sha256: '1'.repeat(64) }))
    assert.match(other.outcome.failure?.message ?? '', /should have SHA-256 1{64} \(the digest stored with it\)/)
  })

  it('with the passphrase authenticates every frame; without it checks digest and format only; another key is a wrong key', async () => {
    const big = dump(FRAME_BYTES + 5000)
    const { object } = await encode(big, 'none', PASSPHRASE)
    const keyed = await verify('b.osb', reader(split(object, 300_000)), { encryptionKey: PASSPHRASE })
    assert.equal(keyed.outcome.failure, undefined)
    assert.equal(keyed.outcome.checksumVerified, true)
    assert.equal(keyed.report.encryption, 'passphrase')
    assert.equal(keyed.report.frames_authenticated, 2)
    assert.equal(keyed.report.decoded_bytes, big.length)

    const keyless = await verify('b.osb', reader([object]))
    assert.equal(keyless.outcome.failure, undefined)
    assert.equal(keyless.outcome.checksumVerified, true)
    assert.equal(keyless.report.frames_authenticated, null)
    assert.equal(keyless.report.decoded_bytes, undefined)
    assert.equal(keyless.report.bytes_read, object.length, 'read to the end for the digest')

    const wrong = await verify('b.osb', reader([object]), { encryptionKey: 'not-the-passphrase' })
    assert.match(wrong.outcome.failure?.message ?? '', /^wrong key: frame 0 of b\.osb/)
    assert.equal(wrong.outcome.checksumVerified, true)
    assert.equal(wrong.report.failure?.check, 'key')
  })

  it('a damaged frame under a recomputed trailer: check frame, with the frame and its offset', async () => {
    const big = dump(FRAME_BYTES + 5000)
    const { object, headerBytes } = await encode(big, 'none', PASSPHRASE)
    const frameStart = headerBytes + FRAME_BYTES + TAG_BYTES
    const damaged = withRecomputedTrailer(flipByte(object, frameStart + 10))
    const { outcome, report } = await verify('b.osb', reader([damaged]), { encryptionKey: PASSPHRASE })
    assert.equal(outcome.checksumVerified, true, 'the digest cannot see it')
    assert.equal(report.failure?.check, 'frame')
    assert.equal(report.failure?.frame, 1)
    assert.equal(report.failure?.offset, frameStart)
    assert.equal(report.frames_authenticated, 1)
  })

  it('a corrupted gzip body under a recomputed trailer: check compression, the digest verified', async () => {
    const { object, headerBytes } = await encode(data, 'gzip')
    const middle = headerBytes + Math.floor((object.length - headerBytes - TRAILER_BYTES) / 2)
    const damaged = withRecomputedTrailer(flipByte(object, middle))
    const { outcome, report } = await verify('b.osb', reader(split(damaged, 4096)))
    assert.ok(outcome.failure instanceof JobError)
    assert.equal(outcome.checksumVerified, true)
    assert.equal(outcome.checksum, damaged.subarray(-TRAILER_BYTES).toString('hex'))
    assert.equal(report.failure?.check, 'compression')
    assert.equal(report.decoded_bytes, undefined)
  })

  it('a version-1 header where the metadata says the digest is in a trailer: a checksum failure', async () => {
    const header = encodeHeader({ format: 'osb', version: 1, compression: 'none', encryption: { mode: 'none' }, frame_bytes: FRAME_BYTES })
    const object = Buffer.concat([header, data])
    const { outcome, report } = await verify('b.osb', reader([object], { metadata: { 'sha256-location': 'trailer' } }))
    assert.match(
      outcome.failure?.message ?? '',
      /^checksum mismatch: b\.osb is stored with its SHA-256 in a trailer, but its header \(format version 1\) has none/,
    )
    assert.equal(outcome.checksumVerified, false)
    assert.equal(report.failure?.check, 'checksum')
    assert.equal(report.format_version, 1)
    // without that metadata, the same object is a version-1 object with nothing to check
    const plain = await verify('b.osb', reader([object]))
    assert.equal(plain.outcome.failure, undefined)
    assert.equal(plain.outcome.checksumVerified, false)
  })

  it('chunk boundaries inside the header and inside the trailer, down to one byte per chunk', async () => {
    const small = dump(300)
    for (const compression of ['none', 'zstd'] as const) {
      const { object, headerBytes } = await encode(small, compression)
      for (const chunks of [split(object, 1), split(object, [3, Math.floor(headerBytes / 2), object.length - TRAILER_BYTES / 2])]) {
        const { outcome, report, seen } = await verify('b.osb', reader(chunks), {
          expected: [{ sha256: sha256(object.subarray(0, -TRAILER_BYTES)), source: 'the test' }],
        })
        assert.equal(outcome.failure, undefined, `${compression}: ${outcome.failure?.message}`)
        assert.equal(outcome.checksumVerified, true)
        assert.equal(report.decoded_bytes, small.length)
        assert.equal(report.bytes_read, object.length)
        assert.equal(seen.length, chunks.length)
      }
      // and a trailer cut at one byte per chunk still fails
      const cut = await verify('b.osb', reader(split(object.subarray(0, -1), 1)))
      assert.equal(cut.report.failure?.check, 'checksum')
      assert.match(cut.outcome.failure?.message ?? '', /checksum mismatch/)
    }
  })

  it('a storage failing mid-read of a .osb object is thrown as it is', async () => {
    const { object } = await encode(data, 'zstd')
    const failing = reader([])
    failing.chunks = (async function* () {
      yield object.subarray(0, 5000)
      throw new Error('socket hang up')
    })()
    const report = newVerificationReport('b.osb')
    await assert.rejects(verifyObject(failing, report, { filename: 'b.osb', encryptionKey: '', requireChecksum: false }), /socket hang up/)
    assert.equal(report.failure, undefined)
  })
})
