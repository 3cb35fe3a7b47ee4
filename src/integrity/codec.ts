// Encoding and decoding of the `.osb` stream: header, then the dump compressed (zstd or gzip)
// and, with a key, encrypted in authenticated frames, then (version 2) the SHA-256 trailer. Both
// directions are async-generator stages for stream.pipeline, so memory stays bounded by a frame
// and the codec buffers.
import { createHash } from 'node:crypto'
import { Readable, type Duplex } from 'node:stream'
import { createGunzip, createGzip, createZstdCompress, createZstdDecompress } from 'node:zlib'
import { JobError } from '../errors.ts'
import { DecryptFrames, EncryptFrames, dataKeyForRestore, encryptionForBackup, wantsEncryption } from './encryption.ts'
import { FORMAT_VERSION, FRAME_BYTES, decodeHeader, encodeHeader, hasTrailer, type Compression, type StreamHeader } from './format.ts'
import { TRAILER_BYTES, TrailerDigest, verifiedTrailer, type ObjectDigest } from './trailer.ts'

export type Stage = (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>

export interface EncodeOptions {
  /** The request's `compression` flag chooses whether; the setting stream_compression which. */
  compression: Compression
  /** The request's encryption_key: '' or "none" for none, a passphrase, or a PEM public key. */
  encryptionKey: string
}

export interface Encoder {
  header: StreamHeader
  /**
   * Its source's chunks may be borrowed (each valid until the next is asked for, as the backup
   * pipe gives them), and so may what it yields: without compression or encryption, those same
   * chunks go on. Consumers copy what they keep.
   */
  encode: Stage
  /** The object's SHA-256 (hex), also its trailer: known once `encode` has finished. */
  sha256(): string
}

/**
 * Builds the encoder for a backup (the current FORMAT_VERSION, with its digest trailer); throws
 * a JobError for a key the agent cannot use.
 */
export function createEncoder(options: EncodeOptions): Encoder {
  const crypto = wantsEncryption(options.encryptionKey) ? encryptionForBackup(options.encryptionKey) : undefined
  const header: StreamHeader = {
    format: 'osb',
    version: FORMAT_VERSION,
    compression: options.compression,
    encryption: crypto?.encryption ?? { mode: 'none' },
    frame_bytes: FRAME_BYTES,
    trailer: 'sha256',
  }
  const headerBytes = encodeHeader(header)
  const transforms: Duplex[] = []
  if (options.compression === 'zstd') transforms.push(createZstdCompress())
  if (options.compression === 'gzip') transforms.push(createGzip())
  if (crypto && header.encryption.mode !== 'none')
    transforms.push(new EncryptFrames(crypto.dataKey, header.encryption.nonce_prefix, headerBytes))
  let sha256: string | undefined
  return {
    header,
    async *encode(source) {
      const hash = createHash('sha256').update(headerBytes)
      yield headerBytes
      // A compressor or cipher keeps its input beyond the next read: those get copies.
      for await (const chunk of through(transforms.length > 0 ? copies(source) : source, transforms)) {
        hash.update(chunk)
        yield chunk
      }
      const trailer = hash.digest()
      sha256 = trailer.toString('hex')
      yield trailer
    },
    sha256() {
      if (sha256 === undefined) throw new Error('the object digest is known only once the stream was encoded')
      return sha256
    },
  }
}

export interface DecodeOptions {
  /** Called with the header once it is read, and the header's length in the object (magic and length field included). */
  onHeader?: (header: StreamHeader, headerBytes: number) => void
  /**
   * The SHA-256 stored with the object (metadata), if any: checked at the end against the trailer
   * (version 2) or the whole object (version 1).
   */
  storedSha256?: string | undefined
  /**
   * false: the caller verified these bytes already (a file-mode restore checks the download
   * before decoding it), so the decoder only strips the trailer and hashes nothing.
   */
  verify?: boolean
  /** After a verified end: the object's digests (`checksum` is the one to report: trailer or whole object). */
  onVerified?: (result: { checksum: string; digest: ObjectDigest; header: StreamHeader }) => void
  /** Names the object in messages. */
  what?: string
}

/**
 * The decoder for a restore: reads the header, then decrypts (each frame authenticated before
 * its bytes go on) and decompresses as the header says. A version-2 object's trailer is held
 * back and checked against the SHA-256 of every byte before it before the stream ends: a
 * mismatch (or an object cut short anywhere) is an error instead of the end of the stream.
 */
export function createDecoder(encryptionKey: string, options: DecodeOptions = {}): Stage {
  const what = options.what ?? 'the streamed backup'
  const verify = options.verify ?? true
  return async function* decode(source) {
    const digest = verify ? new TrailerDigest() : undefined
    const input = (digest ? hashed(source, digest) : source)[Symbol.asyncIterator]()
    let buffered = Buffer.alloc(0)
    let parsed = decodeHeader(buffered)
    while (!parsed) {
      const next = await input.next()
      if (next.done) throw new JobError('not a complete streamed backup: the object ends inside its header')
      buffered = Buffer.concat([buffered, next.value])
      parsed = decodeHeader(buffered)
    }
    const { header, raw, rest } = parsed
    options.onHeader?.(header, raw.length)
    const transforms: Duplex[] = []
    if (header.encryption.mode !== 'none') {
      transforms.push(new DecryptFrames(dataKeyForRestore(header.encryption, encryptionKey), header.encryption.nonce_prefix, raw))
    }
    if (header.compression === 'zstd') transforms.push(createZstdDecompress())
    else if (header.compression === 'gzip') transforms.push(createGunzip())
    else if (header.compression !== 'none')
      throw new JobError(`unsupported compression ${String(header.compression)} in the streamed backup`)
    async function* remaining(): AsyncGenerator<Buffer> {
      if (rest.length > 0) yield rest
      for (;;) {
        const next = await input.next()
        if (next.done) break
        yield next.value
      }
      // The end of the input: verified here, before the body transforms see their end, so a
      // failed check is an error of the stream rather than a clean end after the last byte.
      if (!digest) return
      const result = digest.digest()
      let checksum: string
      if (hasTrailer(header)) checksum = verifiedTrailer(result, what, options.storedSha256)
      else if (options.storedSha256 !== undefined && options.storedSha256.toLowerCase() !== result.whole) {
        throw new JobError(
          `checksum mismatch: ${what} should have SHA-256 ${options.storedSha256} but the streamed bytes have ${result.whole}`,
        )
      } else checksum = result.whole
      options.onVerified?.({ checksum, digest: result, header })
    }
    const body = hasTrailer(header) ? withoutTrailer(remaining(), what) : remaining()
    yield* through(body, transforms)
  }
}

async function* hashed(source: AsyncIterable<Buffer>, digest: TrailerDigest): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    digest.update(chunk)
    yield chunk
  }
}

/**
 * The body of a version-2 object: every byte but the last TRAILER_BYTES. One chunk is held back
 * (no copying) until the next shows it is not the one the trailer ends in; chunks shorter than
 * the trailer are joined with what is held.
 */
async function* withoutTrailer(source: AsyncIterable<Buffer>, what: string): AsyncGenerator<Buffer> {
  let held: Buffer = Buffer.alloc(0)
  for await (const chunk of source) {
    if (chunk.length >= TRAILER_BYTES) {
      if (held.length > 0) yield held
      held = chunk
      continue
    }
    // The trailer may begin in what is held: pass on only what lies before the last 32 bytes.
    const release = held.length + chunk.length - TRAILER_BYTES
    if (release > 0) yield held.subarray(0, release)
    held = Buffer.concat([held.subarray(Math.max(0, release)), chunk])
  }
  if (held.length < TRAILER_BYTES) throw new JobError(`checksum mismatch: ${what} ends inside its SHA-256 trailer: it was cut short`)
  if (held.length > TRAILER_BYTES) yield held.subarray(0, held.length - TRAILER_BYTES)
}

async function* copies(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of source) yield Buffer.from(chunk)
}

async function* through(source: AsyncIterable<Buffer>, transforms: Duplex[]): AsyncGenerator<Buffer> {
  if (transforms.length === 0) {
    yield* source
    return
  }
  let stream: Readable = Readable.from(source, { objectMode: false })
  for (const transform of transforms) stream = stream.compose(transform)
  for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk
}
