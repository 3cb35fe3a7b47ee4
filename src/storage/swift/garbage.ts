// Swift storage hygiene (issue 17): the manager's retention deletes a Static Large Object with a
// plain DELETE of its manifest, which leaves its segments in `<container>_segments` for ever.
// After a successful backup this pass lists the segments container, and deletes the segments
// named the way the agent names them (`<object>/slo/<upload>/…`, slo.ts) whose object no longer
// exists in the container and that are older than the grace (an upload in progress has no
// manifest yet), or, younger, that form a complete upload: a file upload's names say how many
// segments it has, and only an upload that finished has them all, so a complete set without its
// object is a manifest deleted (an upload of this agent writing its manifest right then is
// excluded by the caller: GarbageOptions.uploadingNow). Bounded by listing pages and a
// deadline; it never throws.
import type { GarbageOptions, Reclaimed } from '../storage.ts'
import { drain, readText } from '../http/client.ts'
import type { SwiftClient } from './client.ts'
import { swiftFailure, swiftStatusError, type SwiftContext } from './errors.ts'
import { segmentsContainer } from './slo.ts'

/** Swift's container listings return at most this many names per page. */
export const GARBAGE_LISTING_PAGE = 10_000
/** Problems reported per pass; the rest are counted. */
const MAX_PROBLEMS = 5

/**
 * A segment the agent wrote: `<object>/slo/<seconds>.<micro>/<size>/<segment size>/<index>` (a
 * file) or `<object>/slo/stream-<ms>/<index>` (a stream). The object name has no `/` (a job's file
 * name never has one). Anything else in the container is not ours and is never touched.
 */
const AGENT_SEGMENT = /^(([^/]+)\/slo\/(?:\d+\.\d{6}\/(\d+)\/(\d+)|stream-\d+)\/)(\d{8})$/

/** A segment's object, its upload (the name without the index), and for a file upload how many segments it has. */
interface Segment {
  object: string
  upload: string
  index: number
  /** A file upload's segment count (from its size and segment size); undefined for a stream. */
  count: number | undefined
}

function agentSegment(name: string): Segment | undefined {
  const m = AGENT_SEGMENT.exec(name)
  if (!m) return undefined
  const size = Number(m[3])
  const segmentBytes = Number(m[4])
  const count = m[3] !== undefined && segmentBytes > 0 ? Math.max(1, Math.ceil(size / segmentBytes)) : undefined
  return { object: m[2] as string, upload: m[1] as string, index: Number(m[5]), count }
}

/** The uploads of which every segment is on this page (listed in name order, so an upload is a run of names). */
function completeUploads(segments: readonly Segment[]): Set<string> {
  const seen = new Map<string, Set<number>>()
  for (const s of segments) {
    if (s.count === undefined || s.index >= s.count) continue
    const indices = seen.get(s.upload) ?? new Set<number>()
    indices.add(s.index)
    seen.set(s.upload, indices)
  }
  const complete = new Set<string>()
  for (const s of segments) if (s.count !== undefined && seen.get(s.upload)?.size === s.count) complete.add(s.upload)
  return complete
}

export interface SwiftGarbageTarget {
  client: SwiftClient
  /** The backups' container; the segments are in `<container>_segments`. */
  container: string
  context: (what: string, container: string) => SwiftContext
  /** Names per listing page (GARBAGE_LISTING_PAGE; smaller in tests). */
  pageSize?: number
}

interface ListedObject {
  name: string
  bytes: number
  last_modified: string
}

/** Removes orphaned segments (see the module comment); what it could not do is in `problems`. */
export async function collectSwiftGarbage(target: SwiftGarbageTarget, options: GarbageOptions): Promise<Reclaimed> {
  const pass = new GarbagePass(target, options)
  try {
    await pass.run()
  } catch (error) {
    pass.problem(swiftFailure(pass.ctx, error).message)
  }
  return pass.finish()
}

class GarbagePass {
  readonly result: Reclaimed = { objects: 0, bytes: 0, problems: [] }
  readonly ctx: SwiftContext
  readonly #target: SwiftGarbageTarget
  readonly #options: GarbageOptions
  readonly #segments: string
  /** Whether each object seen so far exists in the container (undefined: could not tell). */
  readonly #exists = new Map<string, boolean | undefined>()
  #unreported = 0

  constructor(target: SwiftGarbageTarget, options: GarbageOptions) {
    this.#target = target
    this.#options = options
    this.#segments = segmentsContainer(target.container)
    this.ctx = target.context(`storage clean-up of container "${this.#segments}"`, this.#segments)
  }

  /** Kept few: a user who may not delete would otherwise get one message per segment. */
  problem(message: string): void {
    if (this.result.problems.length < MAX_PROBLEMS) this.result.problems.push(message)
    else this.#unreported++
  }

  /** The problems, with a count of those left out. */
  finish(): Reclaimed {
    if (this.#unreported > 0) this.result.problems.push(`and ${this.#unreported} more problems of the storage clean-up`)
    return this.result
  }

  async run(): Promise<void> {
    const pageSize = this.#target.pageSize ?? GARBAGE_LISTING_PAGE
    let marker = ''
    for (let pages = 0; pages < this.#options.maxPages; pages++) {
      if (this.#stopped()) return
      const page = await this.#list(marker, pageSize)
      if (page === undefined) return
      await this.#collect(page)
      if (page.length < pageSize) return
      marker = (page.at(-1) as ListedObject).name
    }
  }

  /** True (and a problem noted) once the deadline passed or the job's signal aborted. */
  #stopped(): boolean {
    if (this.#options.signal?.aborted) return true
    if (Date.now() < this.#options.deadline) return false
    this.problem(`${this.ctx.what} stopped at its time limit; the rest waits for the next backup`)
    return true
  }

  /** The request's signal: the job's, and the deadline's. */
  #signal(): AbortSignal {
    const timeout = AbortSignal.timeout(Math.max(1, this.#options.deadline - Date.now()))
    return this.#options.signal ? AbortSignal.any([this.#options.signal, timeout]) : timeout
  }

  /** One listing page; undefined when there is nothing to list (no segments container) or it failed. */
  async #list(marker: string, pageSize: number): Promise<ListedObject[] | undefined> {
    const query = `format=json&marker=${encodeURIComponent(marker)}&limit=${pageSize}`
    const res = await this.#target.client.request({ method: 'GET', container: this.#segments, query, signal: this.#signal() })
    const text = await readText(res)
    if (res.status === 404 || res.status === 204) return undefined
    if (res.status !== 200) {
      this.problem(swiftStatusError(this.ctx, res.status, text, 'container').message)
      return undefined
    }
    return JSON.parse(text) as ListedObject[]
  }

  /** Deletes the page's orphaned segments that are older than the grace or belong to a complete upload. */
  async #collect(page: readonly ListedObject[]): Promise<void> {
    const before = Date.now() - this.#options.graceMs
    const listed = page.flatMap((entry) => {
      const segment = agentSegment(entry.name)
      return segment ? [{ entry, segment }] : []
    })
    const complete = completeUploads(listed.map((l) => l.segment))
    for (const { entry, segment } of listed) {
      if (!(modifiedAt(entry) < before) && !complete.has(segment.upload)) continue
      if (this.#options.uploadingNow?.(segment.object)) continue
      if (this.#stopped()) return
      if ((await this.#objectExists(segment.object)) !== false) continue
      await this.#delete(entry)
    }
  }

  /** Whether `object` is in the backups' container; undefined (a problem noted) when Swift did not say. */
  async #objectExists(object: string): Promise<boolean | undefined> {
    if (this.#exists.has(object)) return this.#exists.get(object)
    const { client, container } = this.#target
    const res = await client.request({ method: 'HEAD', container, object, signal: this.#signal() })
    await drain(res)
    let exists: boolean | undefined = res.status !== 404
    if (res.status !== 404 && (res.status < 200 || res.status > 299)) {
      exists = undefined
      const ctx = this.#target.context(`storage clean-up: checking object "${object}"`, container)
      this.problem(`${swiftStatusError(ctx, res.status, '', 'container').message}; its segments are kept`)
    }
    this.#exists.set(object, exists)
    return exists
  }

  async #delete(entry: ListedObject): Promise<void> {
    const res = await this.#target.client.request({
      method: 'DELETE',
      container: this.#segments,
      object: entry.name,
      signal: this.#signal(),
    })
    const text = await readText(res, 64 * 1024)
    if (res.status >= 200 && res.status <= 299) {
      this.result.objects++
      this.result.bytes += entry.bytes
    } else if (res.status !== 404) {
      const ctx = this.#target.context(`storage clean-up: deleting segment "${entry.name}"`, this.#segments)
      this.problem(swiftStatusError(ctx, res.status, text).message)
    }
  }
}

/** Swift lists `last_modified` in UTC without a zone (`2024-05-01T12:00:00.123456`); NaN when unreadable (kept). */
function modifiedAt(entry: ListedObject): number {
  const value = String(entry.last_modified ?? '')
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(value) ? value : `${value}Z`)
}
