// Digests of a file, or of a byte range of it, computed by worker threads that read the file
// themselves. On the main thread a 1 GiB file's SHA-256 took ~1 s and the MD5s of its Swift
// segments ~2 s, while that thread also had to read, send and answer polls: in a worker the
// hash runs beside the transfer, on another core (docs/PERFORMANCE.md). Each worker reads into
// one buffer it keeps: fresh buffers per read cost a page fault per 4 KiB, a second of system
// time per GiB here.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { JobError } from '../errors.ts'
import { linkedFile, notAFile } from './file-range.ts'

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
  return pool.run(request)
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
    this.#worker.postMessage({ path: request.path, algorithm: request.algorithm, start: request.range?.start ?? 0, length: request.range?.length ?? -1 })
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
      task.reject(new JobError(`${path} changed while it was uploaded: read ${reply.bytes} of ${range.length} bytes (is something still writing it?)`))
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
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads')
  const { closeSync, constants, fstatSync, openSync, readSync } = require('node:fs') as typeof import('node:fs')
  const { createHash } = require('node:crypto') as typeof import('node:crypto')
  const buffer = Buffer.allocUnsafeSlow(1024 * 1024)
  parentPort?.on('message', ({ path, algorithm, start, length }: { path: string; algorithm: string; start: number; length: number }) => {
    let fd: number | undefined
    try {
      // as BACKUP_FILE_FLAGS in file-range.ts: never a link's target, never blocked on a FIFO
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
