// Verifies a stored object by reading it once, start to end, without writing it anywhere (issue
// 17, docs/INTEGRITY.md "Verify"): the SHA-256 of its bytes against the digest it was stored with
// (a version-2 `.osb` object: its own trailer), and for a streamed `.osb` object also its format,
// and with a key every encrypted frame's tag and the compressed stream. A failed decode does not
// stop the read: the digest of the whole object is still compared, so corruption always reads as
// a checksum mismatch, and a digest that matches tells a wrong key from a damaged object.
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { JobError } from '../errors.ts'
import type { ObjectReader } from '../storage/storage.ts'
import { createDecoder } from './codec.ts'
import { FrameAuthenticationError, wantsEncryption } from './encryption.ts'
import { FRAME_BYTES, TAG_BYTES, hasTrailer, isStreamedObject, type Compression, type Encryption, type StreamHeader } from './format.ts'
import { requireDigestWhereMetadataSays, TRAILER_BYTES, TrailerDigest, verifiedTrailer, type ObjectDigest } from './trailer.ts'

/** Which check failed. */
export type FailedCheck = 'checksum' | 'format' | 'key' | 'frame' | 'compression'

/** What a verify read and found: the polling body's `verification` field. */
export interface VerificationReport {
  /** Bytes of the object read so far. */
  bytes_read: number
  /** `osb`: a streamed backup, decoded as well; `file`: any other object, checked by its digest alone. */
  format: 'osb' | 'file'
  format_version?: number
  compression?: Compression
  encryption?: Encryption['mode']
  /** Encrypted frames whose tag checked out; null when none could be checked (not encrypted, or no key given). */
  frames_authenticated: number | null
  /** Bytes the decoded (decrypted, decompressed) stream held, once it was decoded to its end. */
  decoded_bytes?: number
  /** What failed and where; absent when every check passed. */
  failure?: { check: FailedCheck; message: string; offset: number | null; frame: number | null }
}

export interface VerifyOptions {
  /** Names the object in messages. */
  filename: string
  /** A passphrase or PEM private key: authenticates every frame of an encrypted `.osb` object. */
  encryptionKey: string
  /**
   * Digests the object must have besides the one stored with it, each with where it comes from
   * for messages: the one the upload computed (verify after upload), the one the agent recorded
   * when it wrote the object (a verify job). An object replaced with its metadata still fails.
   */
  expected?: readonly ExpectedDigest[]
  /** An object without any digest fails instead of passing unverified. */
  requireChecksum: boolean
  /** Called with the bytes read so far, as they arrive. */
  onProgress?: (bytesRead: number) => void
}

export interface ExpectedDigest {
  sha256: string
  /** Where the digest comes from, for messages: "the agent's record of backup <id>". */
  source: string
}

export interface VerifyOutcome {
  /** The object's digest as verified (trailer or stored), or the stored one a failure names. */
  checksum: string | undefined
  /** Whether the bytes matched a digest (false: none to check, or a mismatch). */
  checksumVerified: boolean
  /** The job's failure message, when a check failed. */
  failure: JobError | undefined
}

/** Ends a decode early without a failure: an encrypted object and no key to open its frames. */
const NO_KEY = Symbol('no key')

/** An empty report for the object of `filename`; verifyObject fills it in as it reads. */
export function newVerificationReport(filename: string): VerificationReport {
  return { bytes_read: 0, format: isStreamedObject(filename) ? 'osb' : 'file', frames_authenticated: null }
}

/**
 * Reads `object` to its end and checks it, filling in `report` as it goes (a poll may read it).
 * Returns what it found; throws only when the storage fails to deliver the bytes.
 */
export async function verifyObject(object: ObjectReader, report: VerificationReport, options: VerifyOptions): Promise<VerifyOutcome> {
  const streamed = report.format === 'osb'
  const digest = new TrailerDigest()
  const source = object.chunks[Symbol.asyncIterator]()
  const read = async (): Promise<Buffer | undefined> => {
    const next = await source.next()
    if (next.done) return undefined
    digest.update(next.value)
    report.bytes_read += next.value.length
    options.onProgress?.(report.bytes_read)
    return next.value
  }
  const decoded = streamed ? await decode(read, options, report) : undefined
  // What the decode left unread (all of a plain object): read to the end for the digest. A read
  // error (the storage) is not a finding about the object: it fails the job as it is.
  while ((await read()) !== undefined) {
    // hashed by read()
  }
  const header = decoded?.header
  const check = checkDigest(digest.digest(), object, header, options)
  const decodeFailure = decoded?.failure
  if (check.failure) {
    const also = decodeFailure ? `; the decode also failed: ${decodeFailure.message}` : ''
    report.failure = {
      check: 'checksum',
      message: check.failure.message,
      offset: decodeFailure?.offset ?? null,
      frame: decodeFailure?.frame ?? null,
    }
    return { checksum: check.checksum, checksumVerified: false, failure: new JobError(`${check.failure.message}${also}`) }
  }
  if (decodeFailure) {
    // Intact bytes whose first frame does not open: another key (damage would change the digest).
    const wrongKey = check.verified && decodeFailure.check === 'frame' && decodeFailure.frame === 0
    const message = wrongKey ? wrongKeyMessage(options.filename) : decodeFailure.message
    report.failure = { ...decodeFailure, check: wrongKey ? 'key' : decodeFailure.check, message }
    return { checksum: check.checksum, checksumVerified: check.verified, failure: new JobError(message) }
  }
  return { checksum: check.checksum, checksumVerified: check.verified, failure: undefined }
}

function wrongKeyMessage(filename: string): string {
  return `wrong key: frame 0 of ${filename} failed authentication although the object matches its SHA-256, so the encryption_key is not the one it was written with`
}

interface Decoded {
  header: StreamHeader | undefined
  failure: NonNullable<VerificationReport['failure']> | undefined
}

/**
 * Decodes a streamed object as far as it can, discarding the output: the header, then (with a
 * key) every frame and the decompression. Never throws for what it finds in the object; a read
 * error of the storage is thrown.
 */
async function decode(read: () => Promise<Buffer | undefined>, options: VerifyOptions, report: VerificationReport): Promise<Decoded> {
  let header: StreamHeader | undefined
  let headerBytes = 0
  let readError: unknown
  async function* input(): AsyncGenerator<Buffer> {
    for (;;) {
      let chunk: Buffer | undefined
      try {
        chunk = await read()
      } catch (error) {
        readError = error
        throw error
      }
      if (chunk === undefined) return
      yield chunk
    }
  }
  const decoder = createDecoder(options.encryptionKey, {
    what: options.filename,
    verify: false, // hashed here, by the read, over every byte
    onHeader: (h, bytes) => {
      header = h
      headerBytes = bytes
      Object.assign(report, { format_version: h.version, compression: h.compression, encryption: h.encryption.mode })
      if (h.encryption.mode !== 'none' && !wantsEncryption(options.encryptionKey)) throw NO_KEY
    },
  })
  let decodedBytes = 0
  const discard = new Writable({
    write(chunk: Buffer, _encoding, done) {
      decodedBytes += chunk.length
      done()
    },
  })
  try {
    await pipeline(input, decoder, discard)
  } catch (error) {
    if (readError !== undefined) throw readError
    if (error === NO_KEY) return { header, failure: undefined }
    return { header, failure: decodeFailure(error, header, headerBytes, report) }
  }
  report.decoded_bytes = decodedBytes
  if (header && header.encryption.mode !== 'none') report.frames_authenticated = frameCount(report.bytes_read, headerBytes, header)
  return { header, failure: undefined }
}

/** Frames in an encrypted body: full frames and one last frame (shorter, even empty but for its tag). */
function frameCount(size: number, headerBytes: number, header: StreamHeader): number {
  const body = size - headerBytes - (hasTrailer(header) ? TRAILER_BYTES : 0)
  return Math.max(1, Math.ceil(body / (FRAME_BYTES + TAG_BYTES)))
}

function decodeFailure(
  error: unknown,
  header: StreamHeader | undefined,
  headerBytes: number,
  report: VerificationReport,
): NonNullable<VerificationReport['failure']> {
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof FrameAuthenticationError) {
    report.frames_authenticated = error.frame
    return { check: 'frame', message, frame: error.frame, offset: headerBytes + error.frame * (FRAME_BYTES + TAG_BYTES) }
  }
  if (header === undefined) return { check: 'format', message, offset: 0, frame: null }
  if (/^wrong key|encryption_key/.test(message)) return { check: 'key', message, offset: null, frame: null }
  // Past the header and not a frame: the decompressor, or the body cut inside its trailer.
  return { check: /checksum mismatch/.test(message) ? 'checksum' : 'compression', message, offset: null, frame: null }
}

/**
 * The digest check, as a restore makes it (src/jobs/transfer.ts): a version-2 `.osb` object
 * against its trailer, anything else against the digest stored with it; then every expected
 * digest (the agent's own record) as well. An object with no digest at all passes unverified
 * unless require_checksum.
 */
function checkDigest(
  digest: ObjectDigest,
  object: ObjectReader,
  header: StreamHeader | undefined,
  options: VerifyOptions,
): { checksum: string | undefined; verified: boolean; failure?: JobError } {
  const stored = object.sha256 === undefined ? [] : [{ sha256: object.sha256, source: 'the digest stored with it' }]
  const expected = [...stored, ...(options.expected ?? [])]
  let actual: string
  try {
    if (header) requireDigestWhereMetadataSays(header, object.metadata, options.filename)
    // the trailer first: a mismatch there says the object was cut short or changed
    actual = header && hasTrailer(header) ? verifiedTrailer(digest, options.filename) : digest.whole
  } catch (error) {
    return { checksum: expected[0]?.sha256 ?? digest.trailer, verified: false, failure: error as JobError }
  }
  const differing = expected.find((e) => e.sha256.toLowerCase() !== actual)
  if (differing) {
    const failure = new JobError(
      `checksum mismatch: ${options.filename} should have SHA-256 ${differing.sha256} (${differing.source}) but its ${digest.size} stored bytes have ${actual}`,
    )
    return { checksum: differing.sha256, verified: false, failure }
  }
  if (expected.length > 0 || (header && hasTrailer(header))) return { checksum: actual, verified: true }
  const failure = options.requireChecksum
    ? new JobError(`${options.filename} has no stored checksum and require_checksum is true: its content cannot be verified`)
    : undefined
  return { checksum: undefined, verified: false, failure }
}
