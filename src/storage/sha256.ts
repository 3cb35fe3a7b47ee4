// The SHA-256 the AWS SDK signs requests with (SigV4 hashes every request body), kept off the
// event loop. Upload parts normally arrive with their hash already taken (a digest worker for
// file parts, hashing as the bytes arrive for streamed ones: src/storage/s3.ts), and the SDK
// signs that; this class is for whatever else the SDK hashes. WebCrypto's digest, used here
// before, copied its input on the calling thread first: 3-70 ms per 8 MiB part on this VM,
// the event-loop stalls behind a polling p99 of 50-120 ms under an upload (docs/PERFORMANCE.md).
// Large bodies go to a digest worker (in place when they live in a SharedArrayBuffer, else as a
// copy); small bodies and the signing HMACs stay synchronous, where a round trip costs more.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto'
import { digestBytes } from './file-digest.ts'

/** Bodies at least this large are hashed by a worker. */
const OFF_THREAD_BYTES = 256 * 1024

type SourceData = string | ArrayBuffer | ArrayBufferView

function bytes(data: SourceData, encoding?: BufferEncoding): Buffer {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8')
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.from(data)
}

/** A drop-in for the SDK's `sha256` hash constructor (update, digest, reset; an HMAC with a secret). */
export class OffThreadSha256 {
  readonly #secret: SourceData | undefined
  #hmac: Hmac | undefined
  #chunks: Buffer[] = []
  #size = 0

  constructor(secret?: SourceData) {
    this.#secret = secret
    this.reset()
  }

  update(data: SourceData, encoding?: BufferEncoding): void {
    if (this.#hmac) {
      this.#hmac.update(bytes(data, encoding))
      return
    }
    const chunk = bytes(data, encoding)
    this.#chunks.push(chunk)
    this.#size += chunk.length
  }

  async digest(): Promise<Uint8Array> {
    if (this.#hmac) return this.#hmac.digest()
    if (this.#size < OFF_THREAD_BYTES) {
      const hash: Hash = createHash('sha256')
      for (const chunk of this.#chunks) hash.update(chunk)
      return hash.digest()
    }
    const data = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#size)
    return digestBytes(data, 'sha256')
  }

  reset(): void {
    this.#hmac = !this.#secret ? undefined : createHmac('sha256', bytes(this.#secret))
    this.#chunks = []
    this.#size = 0
  }
}
