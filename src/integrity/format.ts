// The streamed backup format (`.osb`), documented in docs/STREAM_FORMAT.md:
//
//   "OSB1" | header length (u32 BE) | header (UTF-8 JSON) | body | trailer (version 2)
//
// The header says how the body was made (compression, encryption and its key parameters), so a
// restore decodes what the object says it is, never what a request claims. Version 2 (written
// since the digest trailer) ends with the SHA-256 of everything before it (src/integrity/trailer.ts);
// version 1 objects have no trailer and still decode.
import { open } from 'node:fs/promises'
import { JobError } from '../errors.ts'

/** The name ending of a streamed backup's object. */
export const STREAM_SUFFIX = '.osb'
export const isStreamedObject = (filename: string) => filename.endsWith(STREAM_SUFFIX)

export const MAGIC = Buffer.from('OSB1')
/** The version encoders write; decoders accept every one of SUPPORTED_VERSIONS. */
export const FORMAT_VERSION = 2
const SUPPORTED_VERSIONS = [1, 2]
/** Plaintext bytes per encrypted frame (the last frame may be shorter, even empty). */
export const FRAME_BYTES = 1024 * 1024
export const TAG_BYTES = 16
const MAX_HEADER_BYTES = 64 * 1024

export type Compression = 'none' | 'zstd' | 'gzip'

export type Encryption =
  | { mode: 'none' }
  /** AES-256-GCM, key = scrypt(passphrase, salt, N, r, p). */
  | { mode: 'passphrase'; kdf: 'scrypt'; salt: string; N: number; r: number; p: number; nonce_prefix: string }
  /** AES-256-GCM with a random data key wrapped for an X25519 public key (ECDH + HKDF-SHA256 + AES-256-GCM). */
  | { mode: 'x25519'; ephemeral_public: string; salt: string; wrapped_key: string; wrap_nonce: string; nonce_prefix: string }
  /** AES-256-GCM with a random data key wrapped with RSA-OAEP (SHA-256). */
  | { mode: 'rsa-oaep'; wrapped_key: string; nonce_prefix: string }

export interface StreamHeader {
  format: 'osb'
  version: number
  compression: Compression
  encryption: Encryption
  frame_bytes: number
  /** Version 2: `"sha256"`, the body is followed by a 32-byte SHA-256 trailer. Absent in version 1. */
  trailer?: 'sha256'
}

/** Whether the object ends with a digest trailer (every version-2 object). */
export const hasTrailer = (header: StreamHeader): boolean => header.trailer === 'sha256'

export function encodeHeader(header: StreamHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(json.length)
  return Buffer.concat([MAGIC, length, json])
}

/** Parses the header at the start of `data`; undefined while more bytes are needed. */
export function decodeHeader(data: Buffer): { header: StreamHeader; raw: Buffer; rest: Buffer } | undefined {
  if (data.length < 8) return undefined
  if (!data.subarray(0, 4).equals(MAGIC)) throw new JobError('not a streamed backup: the object does not start with the OSB1 header')
  const length = data.readUInt32BE(4)
  if (length > MAX_HEADER_BYTES) throw new JobError('corrupt streamed backup: header too large')
  if (data.length < 8 + length) return undefined
  let header: StreamHeader
  try {
    header = JSON.parse(data.subarray(8, 8 + length).toString('utf8')) as StreamHeader
  } catch {
    throw new JobError('corrupt streamed backup: the header is not valid JSON')
  }
  if (typeof header !== 'object' || header === null) throw new JobError('corrupt streamed backup: the header is not a JSON object')
  if (header.format !== 'osb' || !SUPPORTED_VERSIONS.includes(header.version)) {
    throw new JobError(
      `unsupported streamed backup format ${String(header.format)} version ${String(header.version)}: this agent reads versions ${SUPPORTED_VERSIONS.join(' and ')}`,
    )
  }
  // The trailer is what makes version 2: one without it (or a version 1 claiming one) is not an
  // object this agent wrote, and decoding it would skip or misread the digest.
  if (header.version >= 2 !== (header.trailer === 'sha256')) {
    throw new JobError(
      `corrupt streamed backup: a version ${String(header.version)} header with trailer ${JSON.stringify(header.trailer ?? null)}`,
    )
  }
  return { header, raw: data.subarray(0, 8 + length), rest: data.subarray(8 + length) }
}

/** The header of the `.osb` file at `path` (a downloaded object); throws as decodeHeader does. */
export async function readFileHeader(path: string): Promise<StreamHeader> {
  const file = await open(path, 'r')
  try {
    const start = Buffer.alloc(8)
    const { bytesRead } = await file.read(start, 0, 8, 0)
    if (bytesRead < 8) throw new JobError('not a complete streamed backup: the object ends inside its header')
    decodeHeader(start) // checks the magic
    const length = Math.min(start.readUInt32BE(4), MAX_HEADER_BYTES + 1)
    const all = Buffer.alloc(8 + length)
    const read = await file.read(all, 0, all.length, 0)
    const parsed = decodeHeader(all.subarray(0, read.bytesRead))
    if (!parsed) throw new JobError('not a complete streamed backup: the object ends inside its header')
    return parsed.header
  } finally {
    await file.close()
  }
}
