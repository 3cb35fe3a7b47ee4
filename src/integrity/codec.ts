// Encoding and decoding of the `.osb` stream: header, then the dump compressed (zstd or gzip)
// and, with a key, encrypted in authenticated frames. Both directions are async-generator
// stages for stream.pipeline, so memory stays bounded by a frame and the codec buffers.
import { Readable, type Duplex } from 'node:stream'
import { createGunzip, createGzip, createZstdCompress, createZstdDecompress } from 'node:zlib'
import { JobError } from '../errors.ts'
import { DecryptFrames, EncryptFrames, dataKeyForRestore, encryptionForBackup, wantsEncryption } from './encryption.ts'
import { FORMAT_VERSION, FRAME_BYTES, decodeHeader, encodeHeader, type Compression, type StreamHeader } from './format.ts'

export type Stage = (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>

export interface EncodeOptions {
  /** The request's `compression` flag chooses whether; the setting stream_compression which. */
  compression: Compression
  /** The request's encryption_key: '' or "none" for none, a passphrase, or a PEM public key. */
  encryptionKey: string
}

/** Builds the encoder for a backup; throws a JobError for a key the agent cannot use. */
export function createEncoder(options: EncodeOptions): { header: StreamHeader; encode: Stage } {
  const crypto = wantsEncryption(options.encryptionKey) ? encryptionForBackup(options.encryptionKey) : undefined
  const header: StreamHeader = {
    format: 'osb',
    version: FORMAT_VERSION,
    compression: options.compression,
    encryption: crypto?.encryption ?? { mode: 'none' },
    frame_bytes: FRAME_BYTES,
  }
  const headerBytes = encodeHeader(header)
  const transforms: Duplex[] = []
  if (options.compression === 'zstd') transforms.push(createZstdCompress())
  if (options.compression === 'gzip') transforms.push(createGzip())
  if (crypto && header.encryption.mode !== 'none') transforms.push(new EncryptFrames(crypto.dataKey, header.encryption.nonce_prefix, headerBytes))
  return {
    header,
    async *encode(source) {
      yield headerBytes
      yield* through(source, transforms)
    },
  }
}

/**
 * The decoder for a restore: reads the header, then decrypts (each frame authenticated before
 * its bytes go on) and decompresses as the header says.
 */
export function createDecoder(encryptionKey: string, onHeader?: (header: StreamHeader) => void): Stage {
  return async function* decode(source) {
    const input = source[Symbol.asyncIterator]()
    let buffered = Buffer.alloc(0)
    let parsed = decodeHeader(buffered)
    while (!parsed) {
      const next = await input.next()
      if (next.done) throw new JobError('not a complete streamed backup: the object ends inside its header')
      buffered = Buffer.concat([buffered, next.value])
      parsed = decodeHeader(buffered)
    }
    const { header, raw, rest } = parsed
    onHeader?.(header)
    const transforms: Duplex[] = []
    if (header.encryption.mode !== 'none') {
      transforms.push(new DecryptFrames(dataKeyForRestore(header.encryption, encryptionKey), header.encryption.nonce_prefix, raw))
    }
    if (header.compression === 'zstd') transforms.push(createZstdDecompress())
    else if (header.compression === 'gzip') transforms.push(createGunzip())
    else if (header.compression !== 'none') throw new JobError(`unsupported compression ${String(header.compression)} in the streamed backup`)
    async function* remaining(): AsyncGenerator<Buffer> {
      if (rest.length > 0) yield rest
      for (;;) {
        const next = await input.next()
        if (next.done) return
        yield next.value
      }
    }
    yield* through(remaining(), transforms)
  }
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
