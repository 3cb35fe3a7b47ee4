// S3's storage hygiene (collectGarbage) against the real S3 server (Swift's s3api): a multipart
// upload left unfinished under the prefix is aborted once older than the grace and its parts'
// bytes counted; a fresh one, a completed object and an upload outside the prefix are left alone.
// Then the bounds (listing pages, deadline, pagination) with a scripted client.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout } from 'node:timers/promises'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { S3Destination } from '../../../../src/jobs/request.ts'
import { readText } from '../../../../src/storage/http/client.ts'
import { S3Client } from '../../../../src/storage/s3/client.ts'
import { abortStaleUploads, type GarbageClient } from '../../../../src/storage/s3/garbage.ts'
import { S3Error } from '../../../../src/storage/s3/errors.ts'
import { S3Storage } from '../../../../src/storage/s3/storage.ts'
import { readUploadListing } from '../../../../src/storage/s3/xml.ts'
import type { GarbageOptions } from '../../../../src/storage/storage.ts'
import { s3Lab, uniqueName } from '../../../helpers/storage.ts'

const HOUR = 3_600_000
const MiB = 1024 * 1024
const options = (graceMs: number, more: Partial<GarbageOptions> = {}): GarbageOptions => ({
  graceMs,
  maxPages: 10,
  deadline: Date.now() + 30_000,
  ...more,
})

describe('S3Storage.collectGarbage against the lab', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-s3-gc')

  before(() => s3.createBucket(bucket))

  /** The lab's bucket under `prefix`; `hostPort` elsewhere for a server that is not there. */
  function storage(prefix: string, hostPort = new URL(s3.endpoint).host, storageRetries = 2): S3Storage {
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
    return new S3Storage(destination, prefix, { storageRetries })
  }

  /** An upload left as a crash leaves it: created, parts sent, never completed or aborted. */
  async function leaveUpload(key: string, partSizes: number[]): Promise<string> {
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
    for (const [i, size] of partSizes.entries()) {
      await s3.client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: Buffer.alloc(size, i) }))
    }
    return UploadId as string
  }

  async function uploadIds(prefix: string): Promise<string[]> {
    const res = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))
    return (res.Uploads ?? []).map((u) => u.UploadId as string)
  }

  it('aborts an unfinished upload older than the grace and counts its parts', async () => {
    const stale = await leaveUpload('gc-a/stale.osb', [5 * MiB, 1234])
    assert.deepEqual(await uploadIds('gc-a/'), [stale])
    // Swift's s3api rounds Initiated up to the next whole second: until then it is "in the future".
    await setTimeout(1100)
    const reclaimed = await storage('gc-a/').collectGarbage(options(0))
    assert.deepEqual(reclaimed, { objects: 1, bytes: 5 * MiB + 1234, problems: [] })
    assert.deepEqual(await uploadIds('gc-a/'), [])
  })

  it('keeps an upload younger than the grace', async () => {
    const fresh = await leaveUpload('gc-b/fresh.osb', [100])
    const reclaimed = await storage('gc-b/').collectGarbage(options(HOUR))
    assert.deepEqual(reclaimed, { objects: 0, bytes: 0, problems: [] })
    assert.deepEqual(await uploadIds('gc-b/'), [fresh])
  })

  it('leaves completed objects (single PUT and multipart) and uploads outside the prefix alone', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'gc-c/done.osb', Body: 'whole' }))
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'gc-c/done-mpu.osb' }))
    const part = await s3.client.send(
      new UploadPartCommand({ Bucket: bucket, Key: 'gc-c/done-mpu.osb', UploadId, PartNumber: 1, Body: Buffer.alloc(10, 1) }),
    )
    await s3.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'gc-c/done-mpu.osb',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    )
    const outside = await leaveUpload('gc-c-other/stale.osb', [100])
    const sibling = await leaveUpload('gc-cx', [100]) // shares the prefix's letters, not its folder
    const reclaimed = await storage('gc-c/').collectGarbage(options(0))
    assert.deepEqual(reclaimed, { objects: 0, bytes: 0, problems: [] })
    assert.deepEqual((await s3.keys(bucket)).filter((k) => k.startsWith('gc-c/')).sort(), ['gc-c/done-mpu.osb', 'gc-c/done.osb'])
    assert.equal((await s3.getObject(bucket, 'gc-c/done.osb')).toString(), 'whole')
    assert.deepEqual(await uploadIds('gc-c-other/'), [outside])
    assert.deepEqual(await uploadIds('gc-cx'), [sibling])
  })

  it('pages through the lab listing with the markers it derives, within maxPages', async () => {
    // Swift's s3api answers a cut listing without NextKeyMarker: the last upload continues it.
    const ids = [await leaveUpload('gc-d/1.osb', [10]), await leaveUpload('gc-d/2.osb', [10]), await leaveUpload('gc-d/3.osb', [10])]
    const seen: string[] = []
    const client = labPagedClient(s3, bucket, seen)
    const reclaimed = await abortStaleUploads(client, 'gc-d/', options(HOUR), (e) => String(e))
    assert.deepEqual(reclaimed, { objects: 0, bytes: 0, problems: [] })
    assert.deepEqual(seen.sort(), [...ids].sort(), 'every upload seen once, over pages of one')
  })

  it('reports what it could not do as messages, without throwing', async () => {
    // discard port: nothing listens
    const reclaimed = await storage('gc-e/', '127.0.0.1:9', 0).collectGarbage(options(0))
    assert.equal(reclaimed.objects, 0)
    assert.equal(reclaimed.problems.length, 1)
    assert.match(reclaimed.problems[0] as string, /listing of the unfinished uploads under gc-e\/ failed: cannot reach the S3 endpoint/)
  })
})

/**
 * The agent's S3 client with ListMultipartUploads cut to one upload per page (max-uploads=1), so
 * the pages and their markers are the lab's; every upload listed is recorded.
 */
function labPagedClient(s3: ReturnType<typeof s3Lab>, bucket: string, seen: string[]): GarbageClient {
  const hostPort = new URL(s3.endpoint).host
  const target = {
    endpoint: hostPort,
    endpointUrl: `http://${hostPort}`,
    bucket,
    region: 'us-east-1',
    credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
  }
  const client = new S3Client(target, 0)
  return {
    async listMultipartUploadsPage(prefix, marker, options) {
      const query: Record<string, string> = {
        uploads: '',
        prefix,
        'max-uploads': '1',
        ...(marker ? { 'key-marker': marker.keyMarker, 'upload-id-marker': marker.uploadIdMarker } : {}),
      }
      const listing = await client.call({ method: 'GET', query }, options, async (res) => readUploadListing(await readText(res)))
      seen.push(...listing.uploads.map((u) => u.uploadId))
      return listing
    },
    listPartsPage: (...args) => client.listPartsPage(...args),
    abortMultipartUpload: (...args) => client.abortMultipartUpload(...args),
  }
}

describe('abortStaleUploads bounds (a scripted server)', () => {
  const old = new Date(Date.now() - 2 * HOUR).toISOString()
  /** Pages of two stale uploads each, `pages` of them; every request recorded. */
  function scripted(pages: number, failAbort?: string) {
    const requests: string[] = []
    const client: GarbageClient = {
      async listMultipartUploadsPage(prefix, marker) {
        requests.push(`list ${marker?.keyMarker ?? ''}`)
        const page = marker ? Number(marker.keyMarker.slice(prefix.length)) + 1 : 0
        const uploads = [0, 1].map((i) => ({ key: `${prefix}${page}`, uploadId: `u${page}-${i}`, initiated: old }))
        return { uploads, next: page + 1 < pages ? { keyMarker: `${prefix}${page}`, uploadIdMarker: `u${page}-1` } : undefined }
      },
      async listPartsPage(_key, uploadId) {
        requests.push(`parts ${uploadId}`)
        return { bytes: 7, next: undefined }
      },
      async abortMultipartUpload(_key, uploadId) {
        requests.push(`abort ${uploadId}`)
        if (uploadId === failAbort) throw new S3Error(403, 'AccessDenied', 'no', undefined)
        if (uploadId === 'u0-1') throw new S3Error(404, 'NoSuchUpload', 'gone', undefined)
      },
    }
    return { client, requests }
  }

  it('walks every page when the bounds allow, aborting each stale upload', async () => {
    const { client, requests } = scripted(2)
    const reclaimed = await abortStaleUploads(client, 'p/', options(HOUR), (_e, what) => what)
    // u0-1 answered NoSuchUpload: gone meanwhile, neither counted nor a problem.
    assert.deepEqual(reclaimed, { objects: 3, bytes: 21, problems: [] })
    assert.equal(requests.filter((r) => r.startsWith('list')).length, 2)
  })

  it('counts ListParts pages against maxPages and stops listing when they run out', async () => {
    const { client, requests } = scripted(5)
    const reclaimed = await abortStaleUploads(client, 'p/', options(HOUR, { maxPages: 3 }), (_e, what) => what)
    assert.deepEqual(requests, ['list ', 'parts u0-0', 'abort u0-0', 'parts u0-1', 'abort u0-1'])
    assert.deepEqual(reclaimed.objects, 1)
    assert.equal(reclaimed.problems.length, 1)
    assert.match(reclaimed.problems[0] as string, /stopped at its 3 listing pages; what is left waits for the next backup/)
  })

  it('aborts without counting bytes once the pages are spent', async () => {
    const { client, requests } = scripted(1)
    const reclaimed = await abortStaleUploads(client, 'p/', options(HOUR, { maxPages: 1 }), (_e, what) => what)
    assert.deepEqual(requests, ['list ', 'abort u0-0', 'abort u0-1'])
    assert.deepEqual(reclaimed, { objects: 1, bytes: 0, problems: [] })
  })

  it('sends nothing after the deadline, and says so', async () => {
    const { client, requests } = scripted(1)
    const reclaimed = await abortStaleUploads(client, 'p/', options(0, { deadline: Date.now() - 1 }), (_e, what) => what)
    assert.deepEqual(requests, [])
    assert.deepEqual(reclaimed.problems, [
      'the clean-up of unfinished uploads under p/ stopped at its deadline; what is left waits for the next backup',
    ])
  })

  it('goes on after an abort that fails, with the failure as a message', async () => {
    const { client } = scripted(2, 'u1-0')
    const reclaimed = await abortStaleUploads(client, 'p/', options(HOUR), (e, what) => `${what}: ${(e as S3Error).code}`)
    assert.equal(reclaimed.objects, 2)
    assert.deepEqual(reclaimed.problems, ['abort of the unfinished upload u1-0 of p/1: AccessDenied'])
  })

  it('never aborts an upload outside the prefix a server lists anyway, nor one without an Initiated time', async () => {
    const aborted: string[] = []
    const client: GarbageClient = {
      async listMultipartUploadsPage() {
        return {
          uploads: [
            { key: 'other/x', uploadId: 'a', initiated: old },
            { key: 'p/undated', uploadId: 'b' },
          ],
          next: undefined,
        }
      },
      async listPartsPage() {
        return { bytes: 1, next: undefined }
      },
      async abortMultipartUpload(_key, uploadId) {
        aborted.push(uploadId)
      },
    }
    const reclaimed = await abortStaleUploads(client, 'p/', options(0), (_e, what) => what)
    assert.deepEqual(aborted, [])
    assert.deepEqual(reclaimed.problems, [
      '1 unfinished upload(s) under p/ have no Initiated time (first: p/undated); left alone, their age is unknown',
    ])
  })
})
