// Digests of a file, or of a byte range of it. SHA-256 (the whole-object digest, and S3's part
// hashes that SigV4 signs) is hashed on the main thread, a MiB at a time between reads; MD5 (a
// Swift segment's) by worker threads that read the file themselves.
//
// Why the split: a worker costs ~20 MB of RSS while it runs (its own V8 isolate and Node
// bootstrap), ~15 MB of which stayed resident after it ended, and in an S3 file upload it was
// the largest part of the peak above idle (release agent, 1 GiB: 121 -> 114 MB without it; after
// five 20 MiB uploads: +21.5 -> +16 MB). SHA-256 runs on the CPU's SHA extensions (0.7 s per GiB
// here, ~0.7 ms per MiB step, so polls are not held up); MD5 has none (1.4 s per GiB) and stays
// beside the transfer on another core. Each reader keeps its buffer: fresh buffers per read cost
// a page fault per 4 KiB, a second of system time per GiB here.
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { JobError } from '../../errors.ts'
import { BACKUP_FILE_FLAGS, linkedFile, notAFile } from './backup-file.ts'

export type DigestAlgorithm = 'md5' | 'sha256'

export interface DigestRequest {
  path: string
  algorithm: DigestAlgorithm
  /** A byte range; the whole file (to its end, whatever its size then) without one. */
  range?: { start: number; length: number } | undefined
  /** Stops the read (the worker is ended); the promise rejects. */
  signal?: AbortSignal | undefined
}

/** Hex digest of the file (range). Rejects when the file holds fewer bytes than the range. */
export function digestFile(request: DigestRequest): Promise<string> {
  return request.algorithm === 'sha256' ? digestHere(request) : pool.run(request)
}

const READ_BYTES = 1024 * 1024
/** Read buffers of the main thread's digests, kept for the next one (two run at once at most, as a rule). */
const freeBuffers: Buffer[] = []

/** The digest on the main thread: the same checks and reads as the worker's, a MiB at a time. */
async function digestHere({ path, algorithm, range, signal }: DigestRequest): Promise<string> {
  const cancelled = () => new JobError(String(signal?.reason))
  if (signal?.aborted) throw cancelled()
  const file = await open(path, BACKUP_FILE_FLAGS)
  const buffer = freeBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BYTES)
  try {
    const info = await file.stat()
    if (!info.isFile()) throw notAFile(path)
    if (info.nlink > 1) throw linkedFile(path, info.nlink)
    const hash = createHash(algorithm)
    const start = range?.start ?? 0
    let bytes = 0
    for (;;) {
      if (signal?.aborted) throw cancelled()
      const want = range === undefined ? buffer.length : Math.min(buffer.length, range.length - bytes)
      if (want === 0) break
      const { bytesRead } = await file.read(buffer, 0, want, start + bytes)
      if (bytesRead === 0) break
      hash.update(buffer.subarray(0, bytesRead))
      bytes += bytesRead
    }
    if (signal?.aborted) throw cancelled()
    if (range !== undefined && bytes !== range.length) {
      throw new JobError(`${path} changed while it was uploaded: read ${bytes} of ${range.length} bytes (is something still writing it?)`)
    }
    return hash.digest('hex')
  } finally {
    if (freeBuffers.length < 2) freeBuffers.push(buffer)
    await file.close()
  }
}

/** Workers at most: more than the cores only share them. */
const MAX_WORKERS = Math.max(1, Math.min(2, availableParallelism()))
/**
 * A worker with nothing to do for this long ends, giving its memory back: each costs ~15 MB of
 * RSS (its own V8 isolate), and starting one again takes a few tens of milliseconds.
 */
const IDLE_MS = 1_000

interface Task {
  request: DigestRequest
  resolve: (digest: string) => void
  reject: (error: unknown) => void
}

interface Reply {
  digest?: string
  bytes?: number
  error?: { message: string; code?: string }
  /** Not from the worker: the request's signal aborted, with this reason. */
  cancelled?: string
}

/** A worker doing one task at a time; ended on abort (a synchronous read loop cannot be interrupted). */
class DigestWorker {
  readonly #worker: Worker
  /** Called after each task; `failed`: this worker is ended and must not be used again. */
  readonly done: (worker: DigestWorker, failed: boolean) => void
  #task: Task | undefined
  #onAbort: (() => void) | undefined

  constructor(done: (worker: DigestWorker, failed: boolean) => void) {
    this.done = done
    this.#worker = new Worker(`(${workerMain.toString()})()`, { eval: true })
    this.#worker.on('message', (reply: Reply) => this.#settle(reply))
    this.#worker.on('error', (error) => this.#settle({ error: { message: error.message } }, true))
    this.#worker.on('exit', () => this.#settle({ error: { message: 'the digest worker stopped' } }, true))
    // After the listeners (adding one refs the port again): an idle worker keeps no process
    // alive, a busy one does (start, #settle).
    this.#worker.unref()
  }

  get busy(): boolean {
    return this.#task !== undefined
  }

  start(task: Task): void {
    const { request } = task
    if (request.signal?.aborted) return task.reject(new JobError(String(request.signal.reason)))
    this.#task = task
    this.#onAbort = () => {
      this.#settle({ cancelled: String(request.signal?.reason) }, true)
      void this.#worker.terminate()
    }
    request.signal?.addEventListener('abort', this.#onAbort, { once: true })
    this.#worker.ref()
    this.#worker.postMessage({
      path: request.path,
      algorithm: request.algorithm,
      start: request.range?.start ?? 0,
      length: request.range?.length ?? -1,
    })
  }

  end(): void {
    void this.#worker.terminate()
  }

  #settle(reply: Reply, failed = false): void {
    const task = this.#task
    if (task === undefined) {
      if (failed) this.done(this, true) // died while idle: the pool must not hand it work
      return
    }
    this.#task = undefined
    this.#worker.unref()
    task.request.signal?.removeEventListener('abort', this.#onAbort as () => void)
    const { range, path } = task.request
    if (reply.cancelled !== undefined) {
      task.reject(new JobError(reply.cancelled)) // as every cancelled transfer says it
    } else if (reply.error?.code === 'ENOTREG') {
      task.reject(notAFile(path))
    } else if (reply.error?.code === 'ELINKED') {
      task.reject(linkedFile(path, Number(reply.error.message)))
    } else if (reply.error) {
      task.reject(Object.assign(new Error(reply.error.message), reply.error.code ? { code: reply.error.code } : {}))
    } else if (range !== undefined && reply.bytes !== range.length) {
      task.reject(
        new JobError(
          `${path} changed while it was uploaded: read ${reply.bytes} of ${range.length} bytes (is something still writing it?)`,
        ),
      )
    } else {
      task.resolve(reply.digest as string)
    }
    this.done(this, failed)
  }
}

/** Up to MAX_WORKERS workers, started on demand; tasks wait in order of arrival. */
class DigestPool {
  readonly #workers = new Set<DigestWorker>()
  readonly #queue: Task[] = []
  #idleTimer: NodeJS.Timeout | undefined

  run(request: DigestRequest): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject })
      this.#next()
    })
  }

  #next(): void {
    clearTimeout(this.#idleTimer)
    while (this.#queue.length > 0) {
      let worker = [...this.#workers].find((w) => !w.busy)
      if (worker === undefined && this.#workers.size < MAX_WORKERS) {
        worker = new DigestWorker((w, failed) => {
          if (failed) {
            w.end()
            this.#workers.delete(w)
          }
          this.#next()
        })
        this.#workers.add(worker)
      }
      if (worker === undefined) return
      worker.start(this.#queue.shift() as Task)
    }
    if ([...this.#workers].every((w) => !w.busy)) {
      this.#idleTimer = setTimeout(() => {
        for (const w of this.#workers) w.end()
        this.#workers.clear()
      }, IDLE_MS).unref()
    }
  }
}

const pool = new DigestPool()

/**
 * The worker's code, run from its source text (no module file to find after a build, and no
 * type stripping in the worker). Plain JavaScript only: this function is not called here.
 */
function workerMain(): void {
  const { parentPort } = process.getBuiltinModule('node:worker_threads')
  const { closeSync, constants, fstatSync, openSync, readSync } = process.getBuiltinModule('node:fs')
  const { createHash } = process.getBuiltinModule('node:crypto')
  const buffer = Buffer.allocUnsafeSlow(1024 * 1024)
  parentPort?.on('message', ({ path, algorithm, start, length }: { path: string; algorithm: string; start: number; length: number }) => {
    let fd: number | undefined
    try {
      // as BACKUP_FILE_FLAGS in backup-file.ts: never a link's target, never blocked on a FIFO
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
      const info = fstatSync(fd)
      if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' })
      if (info.nlink > 1) throw Object.assign(new Error(String(info.nlink)), { code: 'ELINKED' })
      const hash = createHash(algorithm)
      let bytes = 0
      for (;;) {
        const want = length < 0 ? buffer.length : Math.min(buffer.length, length - bytes)
        if (want === 0) break
        const n = readSync(fd, buffer, 0, want, start + bytes)
        if (n === 0) break
        hash.update(buffer.subarray(0, n))
        bytes += n
      }
      parentPort?.postMessage({ digest: hash.digest('hex'), bytes })
    } catch (error) {
      parentPort?.postMessage({ error: { message: (error as Error).message, code: (error as { code?: string }).code } })
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  })
}
