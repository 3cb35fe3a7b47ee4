import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { JobError } from '../../../../src/errors.ts'
import {
  MAX_SEGMENTS,
  planSegments,
  SegmentedDigest,
  segmentName,
  segmentPrefix,
  segmentsContainer,
  segmentSizeFor,
  sloEtag,
  unquote,
} from '../../../../src/storage/swift/slo.ts'

const MiB = 1024 * 1024
const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex')

describe('Static Large Object planning', () => {
  it('cuts a file into segments of the configured size, the last one shorter', () => {
    assert.deepEqual(planSegments(23 * MiB, 5 * MiB), [
      { index: 0, start: 0, length: 5 * MiB },
      { index: 1, start: 5 * MiB, length: 5 * MiB },
      { index: 2, start: 10 * MiB, length: 5 * MiB },
      { index: 3, start: 15 * MiB, length: 5 * MiB },
      { index: 4, start: 20 * MiB, length: 3 * MiB },
    ])
    assert.equal(planSegments(10 * MiB, 5 * MiB).length, 2)
    assert.deepEqual(planSegments(0, 5 * MiB), [])
  })

  it('raises the segment size when the file would need more than the manifest limit', () => {
    assert.equal(segmentSizeFor(23 * MiB, 5 * MiB), 5 * MiB)
    const huge = 2000 * 1024 * MiB // 2000 GiB with 1 GiB segments would be 2000 segments
    const size = segmentSizeFor(huge, 1024 * MiB)
    assert.ok(planSegments(huge, size).length <= MAX_SEGMENTS)
    assert.throws(() => segmentSizeFor(6 * 1024 * 1024 * MiB, 1024 * MiB), JobError) // 6 TiB: over 1000 × 5 GiB
  })

  it('names segments like the swift CLI, unique per upload', () => {
    const prefix = segmentPrefix('db.sql', 23 * MiB, 5 * MiB, Date.UTC(2026, 0, 2, 3, 4, 5, 678))
    assert.match(prefix, /^db\.sql\/slo\/1767323045\.678\d{3}\/24117248\/5242880\/$/)
    assert.equal(segmentName(prefix, 3), `${prefix}00000003`)
    assert.notEqual(segmentPrefix('db.sql', 1, 1, 1000), segmentPrefix('db.sql', 1, 1, 1001))
    assert.equal(segmentsContainer('backups'), 'backups_segments')
  })

  it('computes the ETag Swift gives an SLO: MD5 of the segment MD5s', () => {
    // seen on the lab's Swift 2.30 for segments "aaaa" and "bb"
    assert.equal(sloEtag([md5('aaaa'), md5('bb')]), 'dbb7560968a5b8fd0530ccaf84f4cda4')
    assert.equal(unquote('"DBB7560968A5B8FD0530CCAF84F4CDA4"'), 'dbb7560968a5b8fd0530ccaf84f4cda4')
    assert.equal(unquote(undefined), '')
  })
})

describe('SegmentedDigest', () => {
  it('hashes each segment of a stream whatever the chunk boundaries', () => {
    const data = randomBytes(10_000)
    const lengths = [4096, 4096, 1808]
    const expected = [md5(data.subarray(0, 4096)), md5(data.subarray(4096, 8192)), md5(data.subarray(8192))]
    for (const chunk of [1, 7, 4096, 5000, 10_000]) {
      const digest = new SegmentedDigest(lengths)
      for (let offset = 0; offset < data.length; offset += chunk) digest.update(data.subarray(offset, offset + chunk))
      assert.deepEqual(digest.digests(), expected, `chunk size ${chunk}`)
    }
  })

  it('gives fewer digests when the stream ends early and ignores bytes beyond the plan', () => {
    const short = new SegmentedDigest([10, 10])
    short.update(Buffer.alloc(15))
    assert.equal(short.digests().length, 1)
    const long = new SegmentedDigest([10])
    long.update(Buffer.alloc(25))
    assert.deepEqual(long.digests(), [md5(Buffer.alloc(10))])
  })
})
