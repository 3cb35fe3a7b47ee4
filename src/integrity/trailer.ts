// The digest trailer of a version-2 `.osb` object (docs/STREAM_FORMAT.md): its last 32 bytes are
// the SHA-256 of every byte before them. A streamed upload cannot go back and change metadata on
// every backend (S3 would have to copy the whole object), so the object carries its own digest.
import { createHash, type Hash } from 'node:crypto'
import { JobError } from '../errors.ts'
import { hasTrailer, type StreamHeader } from './format.ts'

export const TRAILER_BYTES = 32

/** What one pass over an object's bytes tells about its digest. */
export interface ObjectDigest {
  /** SHA-256 (hex) of every byte: what a version-1 object's stored digest covers. */
  whole: string
  /** SHA-256 (hex) of every byte but the last 32, and those last 32 bytes (hex): undefined when the object is shorter. */
  beforeTrailer: string | undefined
  trailer: string | undefined
  size: number
}

/**
 * Hashes an object as its bytes arrive, holding the last 32 back, so one pass yields both the
 * whole-object digest (version 1) and the digest a trailer must match (version 2).
 */
export class TrailerDigest {
  readonly #hash: Hash = createHash('sha256')
  /** The last bytes seen, at most TRAILER_BYTES, not hashed yet. */
  #tail: Buffer = Buffer.alloc(0)
  #size = 0

  update(chunk: Buffer): void {
    this.#size += chunk.length
    if (chunk.length >= TRAILER_BYTES) {
      // Common case: the held-back bytes are no longer the last ones; hash them and the chunk
      // but its last 32 without concatenating (a chunk is up to a MiB).
      if (this.#tail.length > 0) this.#hash.update(this.#tail)
      this.#hash.update(chunk.subarray(0, chunk.length - TRAILER_BYTES))
      this.#tail = Buffer.from(chunk.subarray(chunk.length - TRAILER_BYTES)) // a copy: the caller may reuse its buffer
      return
    }
    const joined = Buffer.concat([this.#tail, chunk])
    const spill = joined.length - TRAILER_BYTES
    if (spill > 0) this.#hash.update(joined.subarray(0, spill))
    this.#tail = spill > 0 ? joined.subarray(spill) : joined
  }

  digest(): ObjectDigest {
    const complete = this.#tail.length === TRAILER_BYTES
    const beforeTrailer = complete ? this.#hash.copy().digest('hex') : undefined
    const whole = this.#hash.update(this.#tail).digest('hex')
    return { whole, beforeTrailer, trailer: complete ? this.#tail.toString('hex') : undefined, size: this.#size }
  }
}

/**
 * The verified digest of a version-2 object: the trailer, once it matches the bytes before it
 * (and the digest stored as metadata, when there is one). Throws "checksum mismatch" otherwise.
 */
export function verifiedTrailer(digest: ObjectDigest, what: string, stored?: string): string {
  if (digest.trailer === undefined || digest.beforeTrailer === undefined) {
    throw new JobError(`checksum mismatch: ${what} is too short to hold its SHA-256 trailer (${digest.size} bytes): it was cut short`)
  }
  if (digest.beforeTrailer !== digest.trailer) {
    throw new JobError(
      `checksum mismatch: ${what} has the SHA-256 trailer ${digest.trailer} but the bytes before it have ${digest.beforeTrailer} (cut short or tampered with)`,
    )
  }
  if (stored !== undefined && stored.toLowerCase() !== digest.trailer) {
    throw new JobError(
      `checksum mismatch: ${what} should have SHA-256 ${stored} (stored metadata) but its trailer and bytes have ${digest.trailer}`,
    )
  }
  return digest.trailer
}

/** Object metadata key saying where a streamed object's digest is (`trailer`). */
export const DIGEST_LOCATION = 'sha256-location'

/**
 * An object whose metadata says its digest is in a trailer must have one: a version-1 header
 * there means the object was replaced by one without a digest, which must not restore as
 * merely "unverified".
 */
export function requireDigestWhereMetadataSays(header: StreamHeader, metadata: Record<string, string>, what: string): void {
  if (metadata[DIGEST_LOCATION] === 'trailer' && !hasTrailer(header)) {
    throw new JobError(
      `checksum mismatch: ${what} is stored with its SHA-256 in a trailer, but its header (format version ${header.version}) has none`,
    )
  }
}
