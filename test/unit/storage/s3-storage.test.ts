// S3Storage against the real S3 server (Swift's s3api), directly: file uploads with parts streamed
// from the file with their SHA-256 computed beforehand, a part cut mid-body and sent again from a
// fresh stream (through the misbehaving TCP proxy), a file that shrinks while it is uploaded, and
// a download cut mid-body and resumed.
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import http from 'node:http'
import { join } from 'node:path'
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3'
import { JobError } from '../../../src/errors.ts'
import type { S3Destination } from '../../../src/jobs/request.ts'
import { S3Storage } from '../../../src/storage/s3/storage.ts'
import { startFaultyProxy, type FaultyProxy } from '../../helpers/faulty-proxy.ts'
import { s3Lab, uniqueName } from '../../helpers/storage.ts'
import { downloadTo } from '../../helpers/download.ts'

const MiB = 1024 * 1024
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

describe('S3Storage file uploads', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-s3-unit')
  let dir: string
  /** A proxy per test: the agent keeps connections alive, and a proxy picks faults per connection. */
  let proxy: FaultyProxy

  before(async () => {
    await s3.createBucket(bucket)
    dir = await mkdtemp(join(tmpdir(), 'osb-s3-unit-'))
  })
  beforeEach(async () => {
    proxy = await startFaultyProxy(Number(new URL(s3.endpoint).port))
  })
  afterEach(() => proxy.close())
  after(() => rm(dir, { recursive: true, force: true }))

  function storage(hostPort = proxy.hostPort): S3Storage {
    const destination: S3Destination = {
      type: 'S3',
      bucket,
      endpoint: hostPort,
      endpointUrl: `http://${hostPort}`,
      useSSL: false,
      region: 'us-east-1',
      authKey: s3.accessKey,
      authSecret: s3.secretKey,
    }
    return new S3Storage(destination, 'unit/', { storageRetries: 2 })
  }

  async function file(bytes: number): Promise<{ path: string; data: Buffer }> {
    const data = randomBytes(bytes)
    const path = join(dir, `f-${Math.random().toString(36).slice(2)}`)
    await writeFile(path, data)
    return { path, data }
  }

  it('uploads a file of several parts byte-exact, with its SHA-256 as metadata', async () => {
    const { path, data } = await file(20 * MiB + 123)
    let attempts = 0
    await storage().upload(path, 'three-parts.bin', { sha256: sha256(data), onRequest: () => attempts++ })
    assert.deepEqual(sha256(await s3.getObject(bucket, 'unit/three-parts.bin')), sha256(data))
    assert.equal((await s3.headObject(bucket, 'unit/three-parts.bin')).Metadata?.sha256, sha256(data))
    assert.equal(attempts, 5, 'create, 3 parts, complete')
  })

  it('uploads a file smaller than a part with one PUT', async () => {
    const { path, data } = await file(300 * 1024)
    let attempts = 0
    await storage().upload(path, 'small.bin', { onRequest: () => attempts++ })
    assert.equal(sha256(await s3.getObject(bucket, 'unit/small.bin')), sha256(data))
    assert.equal(attempts, 1)
  })

  it('uploads a stream in parts hashed as they filled, and the SDK resends a part cut mid-body', async () => {
    proxy.setFault({ kind: 'cut', afterBytes: 3 * MiB, times: 1 })
    const data = randomBytes(30 * MiB + 5) // 12 + 12 + 6 MiB
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < data.length; i += 100_000) yield data.subarray(i, i + 100_000)
    }
    let attempts = 0
    const { size } = await storage().uploadStream(source(), 'streamed.bin', { onRequest: () => attempts++ })
    assert.equal(size, data.length)
    assert.equal(proxy.faults(), 1)
    assert.equal(attempts, 6, 'create, 3 parts, 1 part again, complete')
    assert.equal(sha256(await s3.getObject(bucket, 'unit/streamed.bin')), sha256(data))
  })

  it('sends a part cut mid-body again from a fresh stream of the file', async () => {
    // The first connection (the create, then part 1 on the kept-alive socket) is reset once
    // 3 MiB went through it: part 1 breaks off mid-body and must be sent again in full.
    proxy.setFault({ kind: 'cut', afterBytes: 3 * MiB, times: 1 })
    const { path, data } = await file(20 * MiB)
    let attempts = 0
    await storage().upload(path, 'retried.bin', { sha256: sha256(data), onRequest: () => attempts++ })
    assert.equal(proxy.faults(), 1)
    assert.equal(attempts, 6, 'create, 3 parts, 1 part again, complete')
    const stored = await s3.getObject(bucket, 'unit/retried.bin')
    assert.equal(stored.length, data.length)
    assert.equal(sha256(stored), sha256(data))
  })

  it('fails after the retries when every connection is cut mid-body, and leaves no upload behind', async () => {
    proxy.setFault({ kind: 'cut-all', afterBytes: MiB })
    const { path } = await file(10 * MiB)
    let attempts = 0
    await assert.rejects(storage().upload(path, 'outage.bin', { onRequest: () => attempts++ }), (error: Error) => {
      assert.ok(error instanceof JobError)
      assert.match(error.message, /upload of unit\/outage\.bin failed: cannot reach the S3 endpoint/)
      return true
    })
    // The create (under 1 MiB) passes; the first part to fail uses up its 3 attempts.
    assert.ok(attempts >= 4, `attempts ${attempts}`)
    const open = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'unit/outage.bin' }))
    assert.deepEqual(open.Uploads ?? [], [])
  })

  it('fails when the file shrinks during the upload, and stores nothing', async () => {
    const { path } = await file(40 * MiB)
    let cut = false
    const upload = storage().upload(path, 'shrinking.bin', {
      onProgress: () => {
        // after the first part is stored, something truncates the file
        if (!cut) void truncate(path, 12 * MiB)
        cut = true
      },
    })
    await assert.rejects(upload, (error: Error) => {
      assert.ok(error instanceof JobError)
      assert.match(error.message, /changed while it was uploaded/)
      return true
    })
    assert.equal((await s3.keys(bucket)).includes('unit/shrinking.bin'), false)
    const open = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'unit/shrinking.bin' }))
    assert.deepEqual(open.Uploads ?? [], [])
  })

  it('downloads with a GET of its own and resumes a body cut midway, pinned to the same object', async () => {
    const { path, data } = await file(20 * MiB + 3)
    await storage().upload(path, 'cut-download.bin', { sha256: Promise.resolve(sha256(data)) })
    proxy.setFault({ kind: 'cut-down', afterBytes: 7 * MiB, times: 1 })
    const target = join(dir, 'downloaded.bin')
    let attempts = 0
    const hash = createHash('sha256')
    const downloaded = await downloadTo(storage(), 'cut-download.bin', target, { onRequest: () => attempts++, onChunk: (chunk) => hash.update(chunk) })
    assert.equal(proxy.faults(), 1)
    assert.equal(attempts, 2, 'the GET, then a ranged GET from the bytes written')
    assert.equal(downloaded.size, data.length)
    assert.equal(downloaded.sha256, sha256(data))
    assert.equal(hash.digest('hex'), sha256(data), 'every byte passed to onChunk once')
    assert.equal(sha256(await readFile(target)), sha256(data))
  })

  it('says the credentials were refused when the answer is an HTML page, not S3 XML', async () => {
    // A proxy in front of S3 (or an auth layer) that answers with its own page: the SDK cannot
    // parse it, the status still says what happened.
    const html = '<html><head><meta charset="utf-8"><title>403 Forbidden</title></head><body>Forbidden</body></html>'
    const server = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(403, { 'content-type': 'text/html' }).end(html))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { path } = await file(1024)
      const port = (server.address() as { port: number }).port
      await assert.rejects(storage(`127.0.0.1:${port}`).upload(path, 'html.bin', { sha256: sha256(Buffer.alloc(0)) }), (error: Error) => {
        assert.ok(error instanceof JobError)
        assert.ok(error.message.includes(`refused the credentials of access key ${s3.accessKey} (HTTP 403)`), error.message)
        return true
      })
    } finally {
      server.close()
    }
  })
})
