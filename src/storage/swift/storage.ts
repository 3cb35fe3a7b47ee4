// OpenStack Swift: the backup file becomes object `filename` in `container_name` (no prefix: the
// manager deletes and restores Swift objects by that bare name). Up to the threshold one
// streaming PUT; above it a Static Large Object whose segments go to `<container>_segments`.
// Every PUT is checked against the MD5 Swift returns; downloads of objects without a stored
// SHA-256 are checked the same way (those with one are checked by the caller, over the whole).
import { createHash, type Hash } from 'node:crypto'
import { stat, type FileHandle } from 'node:fs/promises'
import { JobError } from '../../errors.ts'
import type { SwiftDestination } from '../../jobs/request.ts'
import type { Downloaded, GarbageOptions, ObjectReader, Reclaimed, Storage, StorageSettings, TransferOptions } from '../storage.ts'
import { growingPartSize, parts } from '../files/parts.ts'
import { digestFile } from '../files/digest.ts'
import { sendFileRange, type FileRange } from '../files/backup-file.ts'
import { writeBody } from '../files/sink.ts'
import type { TokenCache } from './keystone.ts'
import { SwiftClient } from './client.ts'
import { collectSwiftGarbage } from './garbage.ts'
import { containerMissing, swiftFailure, swiftStatusError, type SwiftContext } from './errors.ts'
import { drain, readText, type HttpResponse, type StreamedBody } from '../http/client.ts'
import { backoff, isTransientError, withRetries } from '../http/retry.ts'
import {
  planSegments,
  SegmentedDigest,
  segmentName,
  segmentPrefix,
  segmentsContainer,
  segmentSizeFor,
  sloEtag,
  unquote,
  type ManifestEntry,
} from './slo.ts'

/** Segments in flight at once. Memory stays small (streamed from disk); this is for throughput. */
const SEGMENT_CONCURRENCY = 4
/** Segment deletions in flight at once during a cleanup. */
const DELETE_CONCURRENCY = 4
/** Swift's container listings return at most this many names per page. */
const LISTING_PAGE = 10_000

export class SwiftStorage implements Storage {
  readonly location: string
  readonly #d: SwiftDestination
  readonly #settings: StorageSettings
  readonly #client: SwiftClient

  constructor(destination: SwiftDestination, settings: StorageSettings, tokens?: TokenCache) {
    this.#d = destination
    this.#settings = settings
    this.location = `swift container ${destination.containerName} at ${destination.authUrl}`
    this.#client = new SwiftClient(
      {
        authUrl: destination.authUrl,
        domain: destination.domain,
        projectName: destination.projectName,
        username: destination.username,
        password: destination.password,
      },
      { region: settings.swiftRegion, retries: settings.storageRetries, tokens },
    )
  }

  async upload(path: string, filename: string, options: TransferOptions = {}): Promise<void> {
    const ctx = this.#context(`upload of ${filename}`, this.#d.containerName)
    const { signal } = options
    this.#client.onRequest = options.onRequest
    // Stored with the object and checked after a restore's download. An SLO needs it only for
    // its manifest, at the end: a digest still being computed is awaited there.
    const metadata = async (): Promise<Record<string, string>> => {
      const sha256 = await options.sha256
      return sha256 ? { 'x-object-meta-sha256': sha256 } : {}
    }
    try {
      const { size } = await stat(path)
      const progress = new UploadProgress(options.onProgress)
      // Checked first: an SLO would otherwise upload every segment before the manifest finds out.
      await this.#requireContainer(ctx, signal)
      // An SLO of the same name that this upload replaces (a second backup in the same minute):
      // its segments are deleted once the new object stands, as the swift CLI does.
      const replaced = await this.#manifestSegments(filename, signal).catch(() => new Set<string>())
      if (size > this.#settings.swiftSegmentThresholdBytes) {
        await this.#uploadLarge(ctx, path, filename, size, { signal, metadata, progress })
      } else {
        await this.#putVerified(
          ctx,
          this.#d.containerName,
          filename,
          { path, start: 0, length: size },
          { signal, metadata: await metadata(), progress: progress.part(0) },
        )
      }
      // Best effort: the backup is stored; a segment that cannot be deleted now only wastes space.
      await this.#deleteAll(segmentsContainer(this.#d.containerName), [...replaced])
    } catch (error) {
      if (signal?.aborted) throw new JobError(String(signal.reason), { cause: error })
      throw swiftFailure(ctx, error)
    }
  }

  /**
   * Streams the object into `file`. A connection that breaks mid-body is resumed with a
   * ranged GET (If-Match: the same object) from the bytes already written, up to storage_retries.
   * Checked against the ETag (MD5s) only when the object has no stored SHA-256.
   */
  async download(filename: string, file: FileHandle, options: TransferOptions = {}): Promise<Downloaded> {
    const ctx = this.#context(`download of ${filename}`, this.#d.containerName)
    const { signal } = options
    this.#client.onRequest = options.onRequest
    try {
      let written = 0
      let object: { etag: string; size: number | undefined; sha256: string | undefined; check: DownloadCheck } | undefined
      // Resumed only mid-body (the object is known): the first GET is retried by the client.
      const midBody = (error: unknown) => object !== undefined && !(error instanceof JobError) && isTransientError(error)
      const got = await withRetries({ retries: this.#settings.storageRetries, signal, transient: midBody }, async () => {
        const headers: Record<string, string> = object ? { range: `bytes=${written}-`, 'if-match': `"${object.etag}"` } : {}
        const res = await this.#client.request({
          method: 'GET',
          container: this.#d.containerName,
          object: filename,
          headers,
          signal,
          keptBuffers: true,
        })
        if (!object) {
          if (res.status === 404) {
            await drain(res)
            throw await this.#whatIsMissing(ctx, filename, signal)
          }
          if (res.status !== 200) throw swiftStatusError(ctx, res.status, await readText(res), 'read')
          const length = Number(res.headers['content-length'])
          const sha256 = headerValue(res, 'x-object-meta-sha256')
          object = {
            etag: unquote(res.headers.etag),
            size: Number.isFinite(length) ? length : undefined,
            sha256,
            // The caller checks a stored SHA-256 over the whole file (Storage.download): a
            // stronger end-to-end check than the MD5s, which would cost a second hash of every
            // byte on this thread (1.5-2 s per GiB here, docs/PERFORMANCE.md).
            check: sha256 !== undefined ? sizeOnly : await this.#downloadCheck(res, filename, signal),
          }
        } else if (res.status === 412) {
          await drain(res)
          throw new JobError(`${ctx.what} failed: the object changed in Swift while it was being downloaded; start the restore again`)
        } else if (res.status !== 206) {
          throw swiftStatusError(ctx, res.status, await readText(res), 'read')
        }
        const { check } = object
        // Only bytes that reached the file are counted: a resume continues exactly there.
        await writeBody(
          res.body,
          file,
          written,
          (chunk) => {
            check.update(chunk)
            options.onChunk?.(chunk)
          },
          (total) => {
            written = total
            options.onProgress?.(total)
          },
        )
        return object
      })
      if (got.size !== undefined && written !== got.size) {
        throw new JobError(`${ctx.what} was cut short: got ${written} of ${got.size} bytes`)
      }
      got.check.verify(ctx.what)
      return { size: written, sha256: got.sha256 }
    } catch (error) {
      if (signal?.aborted) throw new JobError(String(signal.reason), { cause: error })
      throw swiftFailure(ctx, error)
    }
  }

  /**
   * A stream of unknown length: one PUT when it fits in the first segment, else a Static Large
   * Object of segments buffered in memory (16 MiB, doubling every 500 segments, so a retry can
   * resend one) with SEGMENT_CONCURRENCY in flight. On any failure or abort every segment written
   * is deleted and no object is left.
   */
  async uploadStream(
    source: AsyncIterable<Buffer>,
    filename: string,
    options: TransferOptions & { metadata?: Record<string, string> } = {},
  ): Promise<{ size: number }> {
    const ctx = this.#context(`upload of ${filename}`, this.#d.containerName)
    const { signal } = options
    this.#client.onRequest = options.onRequest
    const container = this.#d.containerName
    const segContainer = segmentsContainer(container)
    const metadata = objectMetadata(options.metadata ?? {})
    const progress = new UploadProgress(options.onProgress)
    const prefix = `${filename}/slo/stream-${Date.now()}/`
    const written: string[] = []
    const entries: ManifestEntry[] = []
    const inFlight = new Set<Promise<void>>()
    let failure: unknown
    let size = 0
    let manifest = false
    try {
      await this.#requireContainer(ctx, signal)
      for await (const part of parts(source, streamSegmentSize)) {
        if (failure !== undefined) throw failure
        size += part.data.length
        if (part.number === 1 && part.last) {
          await this.#putVerified(ctx, container, filename, part.data, { signal, metadata, progress: progress.part(0) })
          return { size }
        }
        if (part.number === 1) await this.#ensureContainer(this.#context(ctx.what, segContainer), signal)
        const name = segmentName(prefix, part.number - 1)
        const index = part.number - 1
        written.push(name)
        const segCtx = this.#context(`${ctx.what} (segment ${part.number})`, segContainer)
        const sending: Promise<void> = this.#putVerified(segCtx, segContainer, name, part.data, {
          signal,
          metadata: {},
          progress: progress.part(index),
        })
          .then((etag) => {
            entries[index] = { path: `/${segContainer}/${name}`, etag, size_bytes: part.data.length }
          })
          .catch((error: unknown) => {
            failure ??= error
          })
          .finally(() => inFlight.delete(sending))
        inFlight.add(sending)
        if (inFlight.size >= SEGMENT_CONCURRENCY) await Promise.race(inFlight)
      }
      await Promise.all(inFlight)
      if (failure !== undefined) throw failure
      manifest = true
      await this.#putManifest(ctx, filename, entries, metadata)
      if (signal?.aborted) throw new JobError(String(signal.reason))
      return { size }
    } catch (error) {
      await Promise.allSettled(inFlight)
      if (manifest) await this.#deleteQuietly(container, filename)
      await this.#deleteAll(segContainer, written)
      if (signal?.aborted) throw new JobError(String(signal.reason), { cause: error })
      throw swiftFailure(ctx, error)
    }
  }

  /** Swift sets metadata with a POST (no copy of the data); a POST replaces all of it. */
  async storeChecksum(filename: string, sha256: string, metadata: Record<string, string>): Promise<void> {
    const ctx = this.#context(`recording the checksum of ${filename}`, this.#d.containerName)
    try {
      const res = await this.#client.request({
        method: 'POST',
        container: this.#d.containerName,
        object: filename,
        headers: objectMetadata({ ...metadata, sha256 }),
      })
      const text = await readText(res, 64 * 1024)
      if (res.status < 200 || res.status > 299) throw swiftStatusError(ctx, res.status, text, 'container')
    } catch (error) {
      throw swiftFailure(ctx, error)
    }
  }

  /**
   * Opens the object as a stream (streamed restores), resuming a broken body with a ranged GET
   * pinned to the same object. The caller checks the SHA-256.
   */
  async read(filename: string, options: TransferOptions = {}): Promise<ObjectReader> {
    const ctx = this.#context(`download of ${filename}`, this.#d.containerName)
    const { signal } = options
    this.#client.onRequest = options.onRequest
    const client = this.#client
    const container = this.#d.containerName
    const retries = this.#settings.storageRetries
    let first: HttpResponse
    try {
      first = await client.request({ method: 'GET', container, object: filename, signal })
      if (first.status === 404) {
        await drain(first)
        throw await this.#whatIsMissing(ctx, filename, signal)
      }
      if (first.status !== 200) throw swiftStatusError(ctx, first.status, await readText(first), 'read')
    } catch (error) {
      if (signal?.aborted) throw new JobError(String(signal.reason), { cause: error })
      throw swiftFailure(ctx, error)
    }
    const etag = unquote(first.headers.etag)
    const length = Number(first.headers['content-length'])
    const size = Number.isFinite(length) ? length : undefined
    const metadata: Record<string, string> = {}
    for (const [name, value] of Object.entries(first.headers)) {
      if (name.startsWith('x-object-meta-') && typeof value === 'string') metadata[name.slice('x-object-meta-'.length)] = value
    }
    async function* chunks(): AsyncGenerator<Buffer> {
      let res = first
      let passed = 0
      for (let resume = 0; ; ) {
        try {
          for await (const chunk of res.body as AsyncIterable<Buffer>) {
            passed += chunk.length
            options.onProgress?.(passed)
            yield chunk
          }
          if (size !== undefined && passed !== size) throw new JobError(`${ctx.what} was cut short: got ${passed} of ${size} bytes`)
          return
        } catch (error) {
          if (signal?.aborted) throw new JobError(String(signal.reason), { cause: error })
          if (error instanceof JobError || !isTransientError(error) || resume >= retries) throw swiftFailure(ctx, error)
          await backoff(resume++, signal)
          res = await client.request({
            method: 'GET',
            container,
            object: filename,
            headers: { range: `bytes=${passed}-`, 'if-match': `"${etag}"` },
            signal,
          })
          if (res.status !== 206) throw swiftStatusError(ctx, res.status, await readText(res), 'read')
        }
      }
    }
    return { sha256: metadata.sha256, size, metadata, chunks: chunks() }
  }

  /**
   * After an agent restart: deletes the segments an interrupted upload of `filename` left in the
   * segments container. Segments the current object (if any) refers to are kept; a plain upload
   * leaves nothing (Swift stores no partial objects).
   */
  async abandon(filename: string): Promise<void> {
    const ctx = this.#context(`cleanup of the interrupted upload of ${filename}`, segmentsContainer(this.#d.containerName))
    try {
      const names = await this.#listSegments(ctx, `${filename}/slo/`)
      if (names.length === 0) return
      const inUse = await this.#manifestSegments(filename)
      const orphans = names.filter((name) => !inUse.has(name))
      const left = await this.#deleteAll(ctx.container, orphans)
      if (left > 0)
        throw new JobError(
          `${ctx.what} failed: ${left} segments could not be deleted from container "${ctx.container}" (names ${filename}/slo/*)`,
        )
    } catch (error) {
      throw swiftFailure(ctx, error)
    }
  }

  /** Storage hygiene after a successful backup: orphaned segments (garbage.ts). Its requests are not the job's `attempts`. */
  async collectGarbage(options: GarbageOptions): Promise<Reclaimed> {
    this.#client.onRequest = undefined
    return collectSwiftGarbage(
      { client: this.#client, container: this.#d.containerName, context: (what, container) => this.#context(what, container) },
      options,
    )
  }

  #context(what: string, container: string): SwiftContext {
    const client = this.#client
    return {
      what,
      container,
      username: this.#d.username,
      get storageUrl() {
        return client.storageUrl
      },
      get tokens() {
        return client.sentTokens
      },
    }
  }

  /**
   * The agent does not create the container (neither did the old one): a typo in container_name
   * should fail, not scatter backups over new containers. A 403 is no verdict: a user with only
   * the container's write ACL may not HEAD it, and the PUT will tell.
   */
  async #requireContainer(ctx: SwiftContext, signal: AbortSignal | undefined): Promise<void> {
    const res = await this.#client.request({ method: 'HEAD', container: ctx.container, signal })
    const text = await readText(res, 64 * 1024)
    if (res.status === 404) throw containerMissing(ctx)
    if (res.status === 403) return
    if (res.status < 200 || res.status > 299) throw swiftStatusError(ctx, res.status, text, 'container')
  }

  /** The segments container is ours: created when missing (a PUT on an existing one changes nothing). */
  async #ensureContainer(ctx: SwiftContext, signal: AbortSignal | undefined): Promise<void> {
    const head = await this.#client.request({ method: 'HEAD', container: ctx.container, signal })
    await drain(head)
    if ((head.status >= 200 && head.status <= 299) || head.status === 403) return
    const res = await this.#client.request({ method: 'PUT', container: ctx.container, signal })
    const text = await readText(res, 64 * 1024)
    if (res.status !== 201 && res.status !== 202) throw swiftStatusError(ctx, res.status, text, 'container')
  }

  /**
   * PUTs a byte range of the file as one object and checks the MD5 Swift computed against the
   * one of the bytes sent; a mismatching object is deleted. Returns the MD5.
   */
  async #putVerified(
    ctx: SwiftContext,
    container: string,
    object: string,
    source: FileRange | Buffer,
    options: PutOptions,
  ): Promise<string> {
    let md5: Hash | undefined
    // A file's range is hashed by a worker reading it beside the upload (src/storage/files/digest.ts),
    // once for all tries; a buffer (a stream's segment) as it is sent.
    const fileMd5 = Buffer.isBuffer(source)
      ? undefined
      : digestFile({ path: source.path, algorithm: 'md5', range: { start: source.start, length: source.length }, signal: options.signal })
    fileMd5?.catch(() => {}) // awaited after the PUT, which may fail first
    const body: StreamedBody = {
      length: Buffer.isBuffer(source) ? source.length : source.length,
      // Sent again for every try: the hash and the progress start again with the bytes.
      send: (write) => {
        options.progress.restart()
        if (!Buffer.isBuffer(source)) return sendFileRange(source, write, (chunk) => options.progress.add(chunk.length))
        const hash = createHash('md5')
        md5 = hash
        return sendBuffer(source, write, (chunk) => {
          hash.update(chunk)
          options.progress.add(chunk.length)
        })
      },
    }
    const res = await this.#client.request({
      method: 'PUT',
      container,
      object,
      headers: { 'content-type': 'application/octet-stream', ...options.metadata },
      body,
      signal: options.signal,
    })
    const text = await readText(res, 64 * 1024)
    if (res.status !== 201) throw swiftStatusError(ctx, res.status, text, 'container')
    const sent = fileMd5 ? await fileMd5 : (md5 ?? createHash('md5')).digest('hex')
    const stored = unquote(res.headers.etag)
    if (stored !== sent) {
      await this.#deleteQuietly(container, object)
      throw new JobError(
        `${ctx.what} failed verification: Swift stored ${object} with MD5 ${stored || '(none)'} but the bytes sent have MD5 ${sent}; the stored copy was deleted`,
      )
    }
    return sent
  }

  /** A Static Large Object: segments first, then the manifest. Nothing is left behind on failure. */
  async #uploadLarge(
    ctx: SwiftContext,
    path: string,
    filename: string,
    size: number,
    {
      signal,
      metadata,
      progress,
    }: { signal: AbortSignal | undefined; metadata: () => Promise<Record<string, string>>; progress: UploadProgress },
  ): Promise<void> {
    const container = this.#d.containerName
    const segmentBytes = segmentSizeFor(size, this.#settings.swiftSegmentBytes)
    const segments = planSegments(size, segmentBytes)
    const segContainer = segmentsContainer(container)
    await this.#ensureContainer(this.#context(ctx.what, segContainer), signal)
    const prefix = segmentPrefix(filename, size, segmentBytes)
    const attempted: string[] = []
    // 'unknown': sent, but no answer came back; Swift may have stored it all the same.
    let manifest: 'not sent' | 'unknown' | 'written' = 'not sent'
    try {
      const etags = await mapLimited(segments, SEGMENT_CONCURRENCY, signal, (segment, segmentSignal) => {
        const name = segmentName(prefix, segment.index)
        attempted.push(name)
        const segCtx = this.#context(`${ctx.what} (segment ${segment.index + 1} of ${segments.length})`, segContainer)
        const range = { path, start: segment.start, length: segment.length }
        return this.#putVerified(segCtx, segContainer, name, range, {
          signal: segmentSignal,
          metadata: {},
          progress: progress.part(segment.index),
        }).catch((error: unknown) => {
          throw swiftFailure(segCtx, error)
        })
      })
      const entries: ManifestEntry[] = segments.map((segment, i) => ({
        path: `/${segContainer}/${segmentName(prefix, segment.index)}`,
        etag: etags[i] as string,
        size_bytes: segment.length,
      }))
      const headers = await metadata()
      manifest = 'unknown'
      // Not aborted by a cancel: a manifest PUT cut off after its body may still be stored, and
      // one that finishes is removed below like any other failed upload.
      const stored = await this.#putManifest(ctx, filename, entries, headers)
      manifest = 'written'
      if (stored !== sloEtag(etags)) {
        throw new JobError(
          `${ctx.what} failed verification: Swift reports ETag ${stored || '(none)'} for the large object, the segments sent give ${sloEtag(etags)}`,
        )
      }
      if (signal?.aborted) throw new JobError(String(signal.reason))
    } catch (error) {
      // The cleanup runs even for a cancelled job: it uses no signal. A DELETE after a PUT whose
      // fate is unknown is safe: Swift orders them by the time the proxy received them.
      if (manifest !== 'not sent') await this.#deleteQuietly(container, filename)
      const left = await this.#deleteAll(segContainer, attempted)
      if (left === 0) throw error
      const failure = signal?.aborted ? new JobError(String(signal.reason)) : swiftFailure(ctx, error)
      throw new JobError(
        `${failure.message}; ${left} of its segments could not be deleted: remove the objects named ${prefix}* from container "${segContainer}"`,
        {
          cause: error,
        },
      )
    }
  }

  /** PUTs a Static Large Object's manifest; returns the ETag Swift computed for the whole. */
  async #putManifest(ctx: SwiftContext, filename: string, entries: ManifestEntry[], metadata: Record<string, string>): Promise<string> {
    const container = this.#d.containerName
    const res = await this.#client.request({
      method: 'PUT',
      container,
      object: filename,
      query: 'multipart-manifest=put',
      headers: { 'content-type': 'application/octet-stream', ...metadata },
      body: JSON.stringify(entries),
    })
    const text = await readText(res, 64 * 1024)
    if (res.status !== 201) throw swiftStatusError(this.#context(`${ctx.what} (manifest)`, container), res.status, text, 'container')
    return unquote(res.headers.etag)
  }

  /** Deletes objects (404 counts as deleted); returns how many are still there. */
  async #deleteAll(container: string, names: readonly string[]): Promise<number> {
    let left = 0
    await mapLimited(names, DELETE_CONCURRENCY, undefined, async (name) => {
      if (!(await this.#deleteQuietly(container, name))) left++
    })
    return left
  }

  /** True when the object is gone (deleted now or never written). */
  async #deleteQuietly(container: string, object: string): Promise<boolean> {
    try {
      const res = await this.#client.request({ method: 'DELETE', container, object })
      await drain(res)
      return (res.status >= 200 && res.status <= 299) || res.status === 404
    } catch {
      return false
    }
  }

  /** Names in the segments container that start with `prefix` (none when it does not exist). */
  async #listSegments(ctx: SwiftContext, prefix: string): Promise<string[]> {
    const names: string[] = []
    for (let marker = ''; ; ) {
      const query = `format=json&prefix=${encodeURIComponent(prefix)}&marker=${encodeURIComponent(marker)}&limit=${LISTING_PAGE}`
      const res = await this.#client.request({ method: 'GET', container: ctx.container, query })
      const text = await readText(res)
      if (res.status === 404) return names
      if (res.status === 204) return names
      if (res.status !== 200) throw swiftStatusError(ctx, res.status, text, 'container')
      const page = (JSON.parse(text) as { name: string }[]).map((o) => o.name)
      names.push(...page)
      if (page.length < LISTING_PAGE) return names
      marker = page[page.length - 1] as string
    }
  }

  /** The segment names (in the segments container) that object `filename` refers to, if it is an SLO. */
  async #manifestSegments(filename: string, signal?: AbortSignal): Promise<Set<string>> {
    const names = new Set<string>()
    const ctx = this.#context(`cleanup of ${filename}`, this.#d.containerName)
    // HEAD first: a GET with ?multipart-manifest=get of a plain object returns the whole object.
    const head = await this.#client.request({ method: 'HEAD', container: this.#d.containerName, object: filename, signal })
    await drain(head)
    if (head.status === 404) return names
    if (head.status < 200 || head.status > 299) throw swiftStatusError(ctx, head.status, '')
    if (String(head.headers['x-static-large-object']).toLowerCase() !== 'true') return names
    const manifest = await this.#manifest(filename, signal)
    if (manifest.status === 404) return names
    if (manifest.status !== 200) throw swiftStatusError(ctx, manifest.status, manifest.text)
    const segContainer = segmentsContainer(this.#d.containerName)
    for (const entry of JSON.parse(manifest.text) as { name?: string }[]) {
      const name = entry.name ?? ''
      if (name.startsWith(`/${segContainer}/`)) names.add(name.slice(segContainer.length + 2))
    }
    return names
  }

  /** A Static Large Object's manifest as Swift stores it (`?multipart-manifest=get`), read whole. */
  async #manifest(filename: string, signal: AbortSignal | undefined): Promise<{ status: number; text: string }> {
    const res = await this.#client.request({
      method: 'GET',
      container: this.#d.containerName,
      object: filename,
      query: 'multipart-manifest=get',
      signal,
    })
    return { status: res.status, text: await readText(res) }
  }

  /** A GET answered 404: say whether the container or the object is missing. */
  async #whatIsMissing(ctx: SwiftContext, filename: string, signal: AbortSignal | undefined): Promise<JobError> {
    const res = await this.#client.request({ method: 'HEAD', container: ctx.container, signal })
    await drain(res)
    if (res.status === 404) return containerMissing(ctx)
    return new JobError(
      `${ctx.what} failed: object "${filename}" does not exist in container "${ctx.container}" of Swift account ${ctx.storageUrl}; check the filename`,
    )
  }

  /**
   * How a download is checked. A plain object: MD5 against its ETag. A Static Large Object: the
   * MD5 of each segment (boundaries from its manifest) against the object's ETag, which is the
   * MD5 of those. Anything else (Dynamic Large Objects, nested or ranged SLOs): size only.
   */
  async #downloadCheck(res: HttpResponse, filename: string, signal: AbortSignal | undefined): Promise<DownloadCheck> {
    const etag = unquote(res.headers.etag)
    if (res.headers['x-object-manifest'] !== undefined) return sizeOnly
    if (String(res.headers['x-static-large-object']).toLowerCase() !== 'true') return new WholeDigest(etag)
    const { status, text } = await this.#manifest(filename, signal)
    if (status !== 200) return sizeOnly
    let entries: unknown
    try {
      entries = JSON.parse(text)
    } catch {
      return sizeOnly
    }
    if (!Array.isArray(entries)) return sizeOnly
    const simple = (entries as { bytes?: unknown; sub_slo?: unknown; range?: unknown }[]).every(
      (e) => !e.sub_slo && e.range === undefined && typeof e.bytes === 'number',
    )
    return simple
      ? new SloDigest(
          (entries as { bytes: number }[]).map((e) => e.bytes),
          etag,
        )
      : sizeOnly
  }
}

interface DownloadCheck {
  update(chunk: Buffer): void
  verify(what: string): void
}

const sizeOnly: DownloadCheck = { update() {}, verify() {} }

class WholeDigest implements DownloadCheck {
  readonly #hash = createHash('md5')
  readonly #etag: string
  constructor(etag: string) {
    this.#etag = etag
  }
  update(chunk: Buffer): void {
    this.#hash.update(chunk)
  }
  verify(what: string): void {
    const got = this.#hash.digest('hex')
    if (got !== this.#etag)
      throw new JobError(`${what} failed verification: the bytes received have MD5 ${got}, Swift's ETag is ${this.#etag || '(none)'}`)
  }
}

class SloDigest implements DownloadCheck {
  readonly #digest: SegmentedDigest
  readonly #etag: string
  constructor(lengths: number[], etag: string) {
    this.#digest = new SegmentedDigest(lengths)
    this.#etag = etag
  }
  update(chunk: Buffer): void {
    this.#digest.update(chunk)
  }
  verify(what: string): void {
    const got = sloEtag(this.#digest.digests())
    if (got !== this.#etag) {
      throw new JobError(
        `${what} failed verification: the segments received give ETag ${got}, Swift's ETag for the large object is ${this.#etag || '(none)'}`,
      )
    }
  }
}

interface PutOptions {
  signal: AbortSignal | undefined
  /** X-Object-Meta-* headers. */
  metadata: Record<string, string>
  progress: PartProgress
}

interface PartProgress {
  /** A new try of this part: the bytes it had sent no longer count. */
  restart(): void
  add(bytes: number): void
}

/** Bytes sent so far over all parts (segments in flight together), for TransferOptions.onProgress. */
class UploadProgress {
  readonly #report: ((bytesDone: number) => void) | undefined
  readonly #parts = new Map<number, number>()
  #total = 0

  constructor(report: ((bytesDone: number) => void) | undefined) {
    this.#report = report
  }

  part(index: number): PartProgress {
    return {
      restart: () => {
        this.#total -= this.#parts.get(index) ?? 0
        this.#parts.set(index, 0)
      },
      add: (bytes) => {
        this.#parts.set(index, (this.#parts.get(index) ?? 0) + bytes)
        this.#total += bytes
        this.#report?.(this.#total)
      },
    }
  }
}

/** Stream segments: 16 MiB × 500, 32 MiB × 500 … at most 1 GiB (Swift's default limit is 1000 segments per manifest). */
const streamSegmentSize = growingPartSize(16 * 1024 * 1024, 500, 1024 * 1024 * 1024)

/** User metadata as X-Object-Meta-* headers. */
function objectMetadata(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`x-object-meta-${k}`, v]))
}

/** A buffer as a request body, in chunks (progress moves as they go). */
async function sendBuffer(data: Buffer, write: (chunk: Buffer) => Promise<void>, onChunk: (chunk: Buffer) => void): Promise<void> {
  const CHUNK = 256 * 1024
  for (let i = 0; i < data.length; i += CHUNK) {
    const chunk = data.subarray(i, i + CHUNK)
    onChunk(chunk)
    await write(chunk)
  }
}

/** Writes all of `data` at `position` (a short write is continued). */
function headerValue(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * Runs `work` over `items`, at most `limit` at once, results in order. After the first failure
 * (or when `outer` aborts) no new item starts and the others in flight are aborted; it rejects
 * with that first failure once every started item has settled, so a cleanup after it sees
 * everything that was written.
 */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  outer: AbortSignal | undefined,
  work: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length)
  const abort = new AbortController()
  const signal = outer ? AbortSignal.any([outer, abort.signal]) : abort.signal
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async () => {
    while (failure === undefined && !signal.aborted && next < items.length) {
      const i = next++
      try {
        results[i] = await work(items[i] as T, signal)
      } catch (error) {
        if (failure === undefined) {
          failure = { error }
          abort.abort()
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failure !== undefined) throw failure.error
  if (signal.aborted) throw new JobError(String(outer?.reason ?? 'aborted'))
  return results
}
