// The S3 client's own rules (src/storage/s3/client.ts), against an S3 server of the test's own
// on 127.0.0.1 that answers as S3 does in the cases a real lab server cannot be made to produce:
// a bucket in another region (301, AuthorizationHeaderMalformed), an error document under
// CompleteMultipartUpload's 200, a clock that is off, throttling, a proxy's HTML page, a listing
// of unfinished uploads over several pages. And the URLs requests go to, AWS's among them.
import { after, afterEach, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../../src/errors.ts'
import type { S3Destination } from '../../../../src/jobs/request.ts'
import { isAwsEndpoint, requestUrl } from '../../../../src/storage/s3/client.ts'
import { S3Storage } from '../../../../src/storage/s3/storage.ts'

const MiB = 1024 * 1024
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

interface Seen {
  method: string
  url: URL
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** The region of the signature's credential scope. */
  region: string
}

interface Answer {
  status: number
  headers?: Record<string, string>
  body?: string | Buffer
}

/** An S3 server of our own: `answer` decides, every request is kept. */
async function fakeS3(
  answer: (request: Seen, index: number) => Answer,
): Promise<{ port: number; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const region = /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\/aws4_request/.exec(req.headers.authorization ?? '')?.[1] ?? ''
      const request: Seen = {
        method: req.method ?? '',
        url: new URL(req.url ?? '/', 'http://fake'),
        headers: req.headers,
        body: Buffer.concat(chunks),
        region,
      }
      seen.push(request)
      const { status, headers = {}, body = '' } = answer(request, seen.length - 1)
      res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers }).end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

const errorXml = (code: string, message: string, extra = '') =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>tx0</RequestId></Error>`

describe('S3 client', () => {
  let dir: string
  let server: Awaited<ReturnType<typeof fakeS3>> | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'osb-s3-client-'))
  })
  afterEach(async () => {
    await server?.close()
    server = undefined
  })
  after(() => rm(dir, { recursive: true, force: true }))

  function storage(port: number, region?: string, retries = 2): S3Storage {
    const destination: S3Destination = {
      type: 'S3',
      bucket: 'bkt',
      endpoint: `127.0.0.1:${port}`,
      endpointUrl: `http://127.0.0.1:${port}`,
      useSSL: false,
      region,
      authKey: 'AKIDEXAMPLE',
      authSecret: 'secret-not-logged',
    }
    return new S3Storage(destination, 'p/', { storageRetries: retries })
  }

  async function file(bytes: number): Promise<{ path: string; data: Buffer }> {
    const data = Buffer.alloc(bytes, 'x')
    const path = join(dir, `f-${Math.random().toString(36).slice(2)}`)
    await writeFile(path, data)
    return { path, data }
  }

  it('follows a bucket to the region its 301 names, and signs for that region from then on', async () => {
    const stored = new Map<string, Buffer>()
    server = await fakeS3((request): Answer => {
      if (request.region !== 'eu-west-1') {
        return {
          status: 301,
          headers: { 'x-amz-bucket-region': 'eu-west-1' },
          body: errorXml('PermanentRedirect', 'The bucket you are attempting to access must be addressed using the specified endpoint.'),
        }
      }
      if (request.method === 'PUT') {
        stored.set(request.url.pathname, request.body)
        return { status: 200, headers: { etag: '"e"' } }
      }
      const body = stored.get(request.url.pathname) as Buffer
      return { status: 200, headers: { 'x-amz-meta-sha256': sha256(body) }, body }
    })
    const s3 = storage(server.port)
    const { path, data } = await file(1000)
    let attempts = 0
    await s3.upload(path, 'moved.bin', { sha256: sha256(data), onRequest: () => attempts++ })
    assert.equal(attempts, 2, 'the redirected PUT, then the PUT to eu-west-1')
    assert.deepEqual(
      server.seen.map((r) => r.region),
      ['us-east-1', 'eu-west-1'],
    )
    assert.equal(server.seen[1]?.headers['x-amz-meta-sha256'], sha256(data))
    assert.equal(server.seen[1]?.headers['x-amz-content-sha256'], sha256(data), 'the precomputed payload hash is signed')
    assert.deepEqual(stored.get('/bkt/p/moved.bin'), data)

    const target = await open(join(dir, 'moved-back'), 'wx')
    try {
      const downloaded = await s3.download('moved.bin', target)
      assert.deepEqual(downloaded, { size: data.length, sha256: sha256(data) })
    } finally {
      await target.close()
    }
    assert.equal(server.seen.at(-1)?.region, 'eu-west-1', 'the download went to the known region at once')
    assert.equal(server.seen.length, 3)
  })

  it('follows the region that an AuthorizationHeaderMalformed answer names in its body', async () => {
    server = await fakeS3((request) =>
      request.region === 'ap-south-2'
        ? { status: 200, headers: { etag: '"e"' } }
        : {
            status: 400,
            body: errorXml(
              'AuthorizationHeaderMalformed',
              `the region '${request.region}' is wrong; expecting 'ap-south-2'`,
              '<Region>ap-south-2</Region>',
            ),
          },
    )
    const { path, data } = await file(10)
    await storage(server.port, 'us-east-1').upload(path, 'x.bin', { sha256: sha256(data) })
    assert.deepEqual(
      server.seen.map((r) => r.region),
      ['us-east-1', 'ap-south-2'],
    )
  })

  it('does not follow a region from another kind of answer, nor a region that is not a region name', async () => {
    for (const [status, code, region] of [
      [400, 'InvalidRequest', 'eu-west-1'],
      [301, 'PermanentRedirect', 'evil.example/x'],
      [403, 'AccessDenied', 'eu-west-1'],
    ] as const) {
      server = await fakeS3(() => ({ status, headers: { 'x-amz-bucket-region': region }, body: errorXml(code, 'no') }))
      const { path, data } = await file(10)
      await assert.rejects(storage(server.port).upload(path, 'x.bin', { sha256: sha256(data) }), (error: Error) => {
        assert.ok(error instanceof JobError)
        assert.match(
          error.message,
          code === 'AccessDenied'
            ? /refused the credentials of access key AKIDEXAMPLE \(AccessDenied\)/
            : new RegExp(`answered ${status} ${code}: no`),
        )
        return true
      })
      assert.equal(server.seen.length, 1, `${code}: one request`)
      await server.close()
      server = undefined
    }
  })

  /** A multipart upload server: create, parts, and completes answered by `complete`. */
  function multipartServer(complete: (attempt: number) => Answer) {
    let completes = 0
    return fakeS3((request) => {
      const q = request.url.searchParams
      if (request.method === 'POST' && q.has('uploads'))
        return {
          status: 200,
          body: '<?xml version="1.0"?><InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>k</Key><UploadId>up&amp;1</UploadId></InitiateMultipartUploadResult>',
        }
      if (request.method === 'PUT' && q.has('partNumber')) return { status: 200, headers: { etag: `"etag-${q.get('partNumber')}"` } }
      if (request.method === 'POST' && q.has('uploadId')) return complete(completes++)
      if (request.method === 'DELETE') return { status: 204 }
      return { status: 500 }
    })
  }

  it('sends CompleteMultipartUpload again when S3 answers it 200 with an error document, or with nothing', async () => {
    server = await multipartServer((n) =>
      n === 0
        ? { status: 200, body: `   \n${errorXml('InternalError', 'We encountered an internal error. Please try again.')}` }
        : n === 1
          ? { status: 200, body: '' }
          : {
              status: 200,
              body: '   <?xml version="1.0"?><CompleteMultipartUploadResult><ETag>"x-2"</ETag></CompleteMultipartUploadResult>',
            },
    )
    const { path, data } = await file(9 * MiB)
    let attempts = 0
    await storage(server.port).upload(path, 'big.bin', { sha256: sha256(data), onRequest: () => attempts++ })
    assert.equal(attempts, 6, 'create, 2 parts, 3 completes')
    const completes = server.seen.filter((r) => r.method === 'POST' && r.url.searchParams.has('uploadId'))
    assert.equal(completes.length, 3)
    assert.equal(completes[0]?.url.searchParams.get('uploadId'), 'up&1')
    assert.equal(
      completes[0]?.body.toString(),
      '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>1</PartNumber><ETag>"etag-1"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"etag-2"</ETag></Part></CompleteMultipartUpload>',
    )
    assert.equal(completes[0]?.headers['x-amz-content-sha256'], sha256(completes[0]?.body as Buffer))
    assert.equal(server.seen.filter((r) => r.method === 'DELETE').length, 0)
  })

  it('fails an upload whose completion keeps failing, and aborts it', async () => {
    server = await multipartServer(() => ({ status: 200, body: errorXml('InternalError', 'Please try again.') }))
    const { path, data } = await file(9 * MiB)
    await assert.rejects(storage(server.port, 'us-east-1', 1).upload(path, 'big.bin', { sha256: sha256(data) }), (error: Error) => {
      assert.ok(error instanceof JobError)
      assert.match(
        error.message,
        /^upload of p\/big\.bin failed: bucket bkt at http:\/\/127\.0\.0\.1:\d+ answered 200 InternalError: Please try again\.$/,
      )
      return true
    })
    assert.equal(server.seen.filter((r) => r.method === 'POST' && r.url.searchParams.has('uploadId')).length, 2, 'one retry')
    const aborts = server.seen.filter((r) => r.method === 'DELETE')
    assert.equal(aborts.length, 1)
    assert.equal(aborts[0]?.url.searchParams.get('uploadId'), 'up&1')
  })

  it("sends a request again with the server's time when its clock is far from ours, and only then", async () => {
    const skewMs = 3_600_000
    server = await fakeS3((request): Answer => {
      const stamp = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(String(request.headers['x-amz-date']))
      const signedAt = stamp ? Date.UTC(+stamp[1]!, +stamp[2]! - 1, +stamp[3]!, +stamp[4]!, +stamp[5]!, +stamp[6]!) : 0
      const serverNow = Date.now() + skewMs
      if (Math.abs(serverNow - signedAt) > 15 * 60_000) {
        return {
          status: 403,
          headers: { date: new Date(serverNow).toUTCString() },
          body: errorXml('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'),
        }
      }
      return { status: 200, headers: { etag: '"e"' } }
    })
    const { path, data } = await file(10)
    const s3 = storage(server.port)
    await s3.upload(path, 'late.bin', { sha256: sha256(data) })
    assert.equal(server.seen.length, 2)
    await s3.upload(path, 'late2.bin', { sha256: sha256(data) })
    assert.equal(server.seen.length, 3, 'the corrected clock is kept')

    // Refused credentials with clocks that agree: not sent again.
    await server.close()
    server = await fakeS3(() => ({
      status: 403,
      headers: { date: new Date().toUTCString() },
      body: errorXml('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'),
    }))
    await assert.rejects(
      storage(server.port).upload(path, 'x.bin', { sha256: sha256(data) }),
      /refused the credentials of access key AKIDEXAMPLE \(SignatureDoesNotMatch\); check authKey and authSecret/,
    )
    assert.equal(server.seen.length, 1)
  })

  it("retries throttling and server errors, explains a proxy's HTML page by its status, and never names the secret", async () => {
    server = await fakeS3((_, n) =>
      n === 0
        ? { status: 503, body: errorXml('SlowDown', 'Please reduce your request rate.') }
        : n === 1
          ? { status: 429, body: '' }
          : { status: 200, headers: { etag: '"e"' } },
    )
    const { path, data } = await file(10)
    let attempts = 0
    await storage(server.port).upload(path, 'x.bin', { sha256: sha256(data), onRequest: () => attempts++ })
    assert.equal(attempts, 3)

    await server.close()
    server = await fakeS3(() => ({
      status: 502,
      headers: { 'content-type': 'text/html' },
      body: '<html><body><h1>502 Bad Gateway</h1></body></html>',
    }))
    await assert.rejects(storage(server.port, 'us-east-1', 1).upload(path, 'x.bin', { sha256: sha256(data) }), (error: Error) => {
      assert.match(error.message, /answered HTTP 502 with a body that is not an S3 error document/)
      assert.ok(!error.message.includes('secret-not-logged'))
      return true
    })
    assert.equal(server.seen.length, 2, 'a 5xx is retried')
  })

  it('removes the unfinished uploads of exactly the key, over every page of the listing', async () => {
    const pages = [
      '<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker>p/f.bin</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>' +
        '<Upload><Key>p/f.bin</Key><UploadId>u1</UploadId></Upload><Upload><Key>p/f.bin</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>',
      '<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>p/f.bin.other</Key><UploadId>u3</UploadId></Upload><Upload><Key>p/f.bin</Key><UploadId>u4</UploadId></Upload></ListMultipartUploadsResult>',
    ]
    let page = 0
    server = await fakeS3((request) => (request.method === 'GET' ? { status: 200, body: pages[page++] as string } : { status: 204 }))
    await storage(server.port).abandon('f.bin')
    const listings = server.seen.filter((r) => r.method === 'GET')
    assert.equal(listings[0]?.url.pathname, '/bkt')
    assert.equal(listings[0]?.url.searchParams.get('prefix'), 'p/f.bin')
    assert.equal(listings[0]?.url.searchParams.has('uploads'), true)
    assert.equal(listings[1]?.url.searchParams.get('key-marker'), 'p/f.bin')
    assert.equal(listings[1]?.url.searchParams.get('upload-id-marker'), 'u2')
    assert.deepEqual(
      server.seen.filter((r) => r.method === 'DELETE').map((r) => [r.url.pathname, r.url.searchParams.get('uploadId')]),
      [
        ['/bkt/p/f.bin', 'u1'],
        ['/bkt/p/f.bin', 'u2'],
        ['/bkt/p/f.bin', 'u4'],
      ],
    )
  })

  it('addresses AWS virtual-hosted by region, other servers path-style, and refuses a key a URL would change', () => {
    const aws = { endpointUrl: 'https://s3.amazonaws.com', bucket: 'my-bucket' }
    assert.equal(
      requestUrl(aws, true, 'eu-west-1', 'p/a b+c.bin', undefined).href,
      'https://my-bucket.s3.eu-west-1.amazonaws.com/p/a%20b%2Bc.bin',
    )
    assert.equal(
      requestUrl(aws, true, 'cn-north-1', 'k', { uploadId: 'a/b=', partNumber: '3' }).href,
      'https://my-bucket.s3.cn-north-1.amazonaws.com.cn/k?uploadId=a%2Fb%3D&partNumber=3',
    )
    assert.equal(
      requestUrl({ ...aws, bucket: 'dotted.bucket' }, true, 'us-east-1', 'k', undefined).href,
      'https://s3.us-east-1.amazonaws.com/dotted.bucket/k',
    )
    assert.equal(
      requestUrl(aws, true, 'us-east-1', undefined, { uploads: '', prefix: 'p/' }).href,
      'https://my-bucket.s3.us-east-1.amazonaws.com/?uploads&prefix=p%2F',
    )
    assert.throws(() => requestUrl(aws, true, 'evil.example/', 'k', undefined), /is not a region name/)
    const custom = { endpointUrl: 'http://127.0.0.1:9000/base', bucket: 'b' }
    assert.equal(requestUrl(custom, false, 'whatever', 'p/ü~.x', undefined).href, 'http://127.0.0.1:9000/base/b/p/%C3%BC~.x')
    for (const key of ['p/../other', 'p/./x', '..', 'p/.'])
      assert.throws(() => requestUrl(custom, false, 'us-east-1', key, undefined), /cannot be addressed in a URL/, key)
    for (const endpoint of [
      's3.amazonaws.com',
      'https://s3.eu-central-1.amazonaws.com',
      's3-us-west-2.amazonaws.com',
      's3.cn-north-1.amazonaws.com.cn',
    ])
      assert.equal(isAwsEndpoint(endpoint), true, endpoint)
    for (const endpoint of ['127.0.0.1:8080', 's3.example.com', 'minio.amazonaws.com.example.org'])
      assert.equal(isAwsEndpoint(endpoint), false, endpoint)
  })
})
