// S3Storage against the real S3 server (Swift's s3api), directly: file uploads with parts streamed
// from the file with their SHA-256 computed beforehand, a part cut mid-body and sent again from a
// fresh stream (through the misbehaving TCP proxy), a file that shrinks while it is uploaded, a
// download cut mid-body and resumed, keys of any characters (the server checks every signature),
// an unfinished upload removed, and HTTPS with a ca_file's trust.
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { join } from 'node:path'
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3'
import fc from 'fast-check'
import { JobError } from '../../../../src/errors.ts'
import type { S3Destination } from '../../../../src/jobs/request.ts'
import { S3Storage } from '../../../../src/storage/s3/storage.ts'
import { trustCertificates } from '../../../../src/tls.ts'
import { makeCertificates } from '../../../helpers/certificates.ts'
import { startFaultyProxy, type FaultyProxy } from '../../../helpers/faulty-proxy.ts'
import { s3Lab, uniqueName } from '../../../helpers/storage.ts'
import { downloadTo } from '../../../helpers/download.ts'

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

  function storage(hostPort = proxy.hostPort, scheme = 'http'): S3Storage {
    const destination: S3Destination = {
      type: 'S3',
      bucket,
      endpoint: hostPort,
      endpointUrl: `${scheme}://${hostPort}`,
      useSSL: scheme === 'https',
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

  it('uploads a stream in parts hashed as they filled, and sends a part cut mid-body again', async () => {
    proxy.setFault({ kind: 'cut', afterBytes: 3 * MiB, times: 1 })
    const data = randomBytes(12 * MiB + 5) // 5 + 5 + 2 MiB
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
    const downloaded = await downloadTo(storage(), 'cut-download.bin', target, {
      onRequest: () => attempts++,
      onChunk: (chunk) => hash.update(chunk),
    })
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
  it('stores and reads back keys of any characters, signed as the server checks them', async () => {
    // The class: every character SigV4 encodes in a path (reserved, percent, plus, non-ASCII).
    const char = fc.oneof(
      fc.constantFrom(
        ' ',
        '+',
        '%',
        '=',
        '&',
        '?',
        '#',
        '~',
        '!',
        "'",
        '(',
        ')',
        '*',
        ',',
        ';',
        ':',
        '@',
        '$',
        '[',
        ']',
        '^',
        '`',
        '{',
        '}',
        '|',
        '"',
        '<',
        '>',
        '\\',
        'é',
        'ß',
        '中',
        '😀',
        '.',
        '-',
        '_',
      ),
      fc.constantFrom('a', 'Z', '0'),
    )
    const names = fc.sample(
      fc.string({ unit: char, minLength: 1, maxLength: 24 }).filter((n) => n !== '.' && n !== '..'),
      { numRuns: 12, seed: 42 },
    )
    const data = Buffer.from('key test')
    for (const name of names) {
      const { path } = await file(0)
      await writeFile(path, data)
      await storage().upload(path, name, { sha256: sha256(data) })
      assert.equal(sha256(await s3.getObject(bucket, `unit/${name}`)), sha256(data), name)
      const downloaded = await downloadTo(storage(), name, join(dir, `got-${Math.random().toString(36).slice(2)}`))
      assert.equal(downloaded.sha256, sha256(data), name)
    }
  })

  it('removes what an interrupted upload left: the unfinished multipart uploads of that key only', async () => {
    const key = 'unit/interrupted.bin'
    const create = (Key: string) => s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))
    await create(key)
    await create(key)
    await create(`${key}.other`)
    await storage().abandon('interrupted.bin')
    const open = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))
    assert.deepEqual(
      (open.Uploads ?? []).map((u) => u.Key),
      [`${key}.other`],
    )
  })

  it('uploads and downloads over HTTPS with the trust of a ca_file, and fails at once without it', async () => {
    const certs = makeCertificates(dir)
    const tlsProxy = async () => {
      const sockets = new Set<net.Socket>()
      const server = tls.createServer({ cert: certs.server.cert, key: certs.server.key }, (client) => {
        const upstream = net.connect(Number(new URL(s3.endpoint).port), '127.0.0.1')
        for (const socket of [client, upstream]) {
          sockets.add(socket)
          socket.on('close', () => sockets.delete(socket))
        }
        client.pipe(upstream).pipe(client)
        client.on('error', () => upstream.destroy())
        upstream.on('error', () => client.destroy())
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const close = () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve())
          for (const socket of sockets) socket.destroy() // the agent keeps its connections alive
        })
      return { hostPort: `127.0.0.1:${(server.address() as { port: number }).port}`, close }
    }
    const { path, data } = await file(20 * MiB + 1)
    // Untrusted first, on a proxy (a port) of its own: a verified connection or TLS session is never reused for it.
    const untrusted = await tlsProxy()
    try {
      trustCertificates(undefined) // as the agent starts without ca_file: the request installs the list
      let attempts = 0
      await assert.rejects(
        storage(untrusted.hostPort, 'https').upload(path, 'tls.bin', { sha256: sha256(data), onRequest: () => attempts++ }),
        (error: Error) => {
          assert.ok(error instanceof JobError)
          assert.match(error.message, /^upload of unit\/tls\.bin failed at https:\/\/127\.0\.0\.1:\d+: .*certificate/)
          return true
        },
      )
      assert.equal(attempts, 1, 'a certificate that is not trusted is not tried again')
    } finally {
      await untrusted.close()
    }
    const trusted = await tlsProxy()
    try {
      trustCertificates(certs.caFile) // as the agent starts with ca_file
      await storage(trusted.hostPort, 'https').upload(path, 'tls.bin', { sha256: sha256(data) })
      assert.equal(sha256(await s3.getObject(bucket, 'unit/tls.bin')), sha256(data))
      const downloaded = await downloadTo(storage(trusted.hostPort, 'https'), 'tls.bin', join(dir, 'tls-back.bin'))
      assert.equal(downloaded.size, data.length)
      assert.equal(sha256(await readFile(join(dir, 'tls-back.bin'))), sha256(data))
    } finally {
      trustCertificates(undefined)
      await trusted.close()
    }
  })
})
