// The real storage servers the tests run against (Swift with s3api, Keystone), started by
// test/servers/storage-up.sh. A missing server fails the test loudly; nothing is skipped.
import { readFileSync } from 'node:fs'
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'

const LAB_DIR = process.env.LAB_DIR ?? '/tmp/osb-storage'

export function labEnv(): Record<string, string> {
  let text: string
  try {
    text = readFileSync(`${LAB_DIR}/env`, 'utf8')
  } catch {
    throw new Error(`storage servers are not running (no ${LAB_DIR}/env): run \`npm run servers:up\` first`)
  }
  const env: Record<string, string> = {}
  for (const m of text.matchAll(/^export (\w+)='([^']*)'$/gm)) env[m[1] as string] = m[2] as string
  return env
}

export function s3Lab() {
  const env = labEnv()
  const endpoint = env.S3_ENDPOINT as string
  const client = new S3Client({
    endpoint,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY as string, secretAccessKey: env.S3_SECRET_KEY as string },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  return {
    endpoint,
    /** host:port, without a scheme, the way many manager configs carry it. */
    hostPort: new URL(endpoint).host,
    accessKey: env.S3_ACCESS_KEY as string,
    secretKey: env.S3_SECRET_KEY as string,
    client,
    /** What s3Destination() takes for `bucket` on this lab. */
    target(bucket: string) {
      return { hostPort: this.hostPort, accessKey: this.accessKey, secretKey: this.secretKey, bucket }
    },
    async createBucket(name: string) {
      await client.send(new CreateBucketCommand({ Bucket: name })).catch((e: Error) => {
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
      })
    },
    async getObject(bucket: string, key: string): Promise<Buffer> {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())
    },
    async headObject(bucket: string, key: string) {
      return client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    },
    async keys(bucket: string): Promise<string[]> {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
      return (res.Contents ?? []).map((o) => o.Key as string)
    },
  }
}

/** A bucket name unique to one test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
}

/** The lab's S3, a bucket name unique to this run (not created yet) and the S3Target a trigger body needs for it. */
export function s3TestBucket(prefix: string) {
  const s3 = s3Lab()
  const bucket = uniqueName(prefix)
  return { s3, bucket, target: s3.target(bucket) }
}
