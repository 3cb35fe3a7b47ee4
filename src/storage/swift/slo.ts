// Static Large Objects, the parts that need no network: how a file is cut into segments, what
// the segments are called, the manifest, and the ETag Swift gives the whole object.
import { createHash, type Hash } from 'node:crypto'
import { JobError } from '../../errors.ts'

/** Swift's default `max_manifest_segments` (clusters may allow more; we never need more). */
export const MAX_SEGMENTS = 1000
/** Swift's default `max_file_size`: the largest single object, so the largest segment. */
export const MAX_OBJECT_BYTES = 5 * 1024 * 1024 * 1024 + 2

export interface Segment {
  index: number
  start: number
  length: number
}

/** One entry of the manifest PUT with ?multipart-manifest=put. */
export interface ManifestEntry {
  path: string
  etag: string
  size_bytes: number
}

/** Where the segments of an object in `container` go (the swift CLI's convention). */
export function segmentsContainer(container: string): string {
  return `${container}_segments`
}

/**
 * The segment size for a file: the setting, raised when the file would need more than
 * MAX_SEGMENTS segments (a 2 TiB file with 1 GiB segments still fits).
 */
export function segmentSizeFor(fileSize: number, configured: number): number {
  const size = Math.max(configured, Math.ceil(fileSize / MAX_SEGMENTS))
  if (size > MAX_OBJECT_BYTES) {
    throw new JobError(
      `the file is ${fileSize} bytes: more than Swift takes as one Static Large Object (${MAX_SEGMENTS} segments of at most 5 GiB)`,
    )
  }
  return size
}

export function planSegments(fileSize: number, segmentBytes: number): Segment[] {
  const segments: Segment[] = []
  for (let start = 0, index = 0; start < fileSize; start += segmentBytes, index++) {
    segments.push({ index, start, length: Math.min(segmentBytes, fileSize - start) })
  }
  return segments
}

/**
 * `<object>/slo/<upload time>/<size>/<segment size>/` like the swift CLI, with the upload's start
 * time to the microsecond (random below the millisecond), so two uploads of one name never share
 * segments and the cleanup of a failed one cannot delete another's.
 */
export function segmentPrefix(filename: string, fileSize: number, segmentBytes: number, now = Date.now()): string {
  const micro = Math.floor(Math.random() * 1000)
  const stamp = `${Math.floor(now / 1000)}.${String((now % 1000) * 1000 + micro).padStart(6, '0')}`
  return `${filename}/slo/${stamp}/${fileSize}/${segmentBytes}/`
}

export function segmentName(prefix: string, index: number): string {
  return prefix + String(index).padStart(8, '0')
}

/** The ETag Swift reports for an SLO: the MD5 of its segments' MD5s (hex) in order. */
export function sloEtag(segmentEtags: readonly string[]): string {
  return createHash('md5').update(segmentEtags.join('')).digest('hex')
}

/** Swift quotes the ETag of large objects and not that of plain ones. */
export function unquote(etag: string | string[] | undefined): string {
  const value = Array.isArray(etag) ? etag[0] : etag
  return (value ?? '').replace(/^"|"$/g, '').toLowerCase()
}

/**
 * MD5s of consecutive byte ranges of one stream (the segments of an SLO as it downloads), so the
 * whole object can be checked against its ETag without reading it twice.
 */
export class SegmentedDigest {
  readonly #lengths: readonly number[]
  readonly #digests: string[] = []
  #index = 0
  #left: number
  #hash: Hash = createHash('md5')

  constructor(lengths: readonly number[]) {
    this.#lengths = lengths
    this.#left = lengths[0] ?? 0
  }

  update(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length) {
      if (this.#index >= this.#lengths.length) return // more bytes than the manifest says: caught by the size check
      const take = Math.min(this.#left, chunk.length - offset)
      this.#hash.update(chunk.subarray(offset, offset + take))
      offset += take
      this.#left -= take
      if (this.#left === 0) this.#next()
    }
  }

  /** The MD5 of every segment; call once the stream has ended. */
  digests(): string[] {
    return [...this.#digests]
  }

  #next(): void {
    this.#digests.push(this.#hash.digest('hex'))
    this.#index++
    this.#hash = createHash('md5')
    this.#left = this.#lengths[this.#index] ?? 0
    // Zero-length segments have the MD5 of nothing.
    if (this.#index < this.#lengths.length && this.#left === 0) this.#next()
  }
}
