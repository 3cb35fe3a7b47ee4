// The streamed backup format (`.osb`), documented in docs/STREAM_FORMAT.md:
//
//   "OSB1" | header length (u32 BE) | header (UTF-8 JSON) | body
//
// The header says how the body was made (compression, encryption and its key parameters), so a
// restore decodes what the object says it is, never what a request claims.
import { JobError } from '../errors.ts'

export const MAGIC = Buffer.from('OSB1')
export const FORMAT_VERSION = 1
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
}

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
  if (header.format !== 'osb' || header.version !== FORMAT_VERSION) {
    throw new JobError(`unsupported streamed backup format ${String(header.format)} version ${String(header.version)}`)
  }
  return { header, raw: data.subarray(0, 8 + length), rest: data.subarray(8 + length) }
}
