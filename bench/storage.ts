// The storage lab seen from the benchmarks: the bucket and containers they use, the peer tools'
// command lines and environments, and removal of what a figure stored.
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { run, runOk } from './lib.ts'

/**
 * This run's bucket and container (one name: s3api keeps a bucket as a container of the same
 * account). Per run, because a bench run of another checkout at the same time empties its own
 * bucket between rounds, and emptied a shared one under this run's restores. Removed at the end.
 */
export const BUCKET = `osb-bench-${process.pid}`
export const CONTAINER = BUCKET
let used = false

export function s3Client(lab: Record<string, string>): S3Client {
  return new S3Client({
    endpoint: lab.S3_ENDPOINT,
    region: lab.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: lab.S3_ACCESS_KEY as string, secretAccessKey: lab.S3_SECRET_KEY as string },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

export async function ensureBucket(lab: Record<string, string>): Promise<void> {
  used = true
  await s3Client(lab)
    .send(new CreateBucketCommand({ Bucket: BUCKET }))
    .catch((e: Error) => {
      if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
    })
}

/** Removes every object of the bench bucket (what the figures stored). */
export async function emptyBucket(lab: Record<string, string>): Promise<void> {
  const client = s3Client(lab)
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }))
    const keys = (page.Contents ?? []).map((o) => o.Key as string)
    if (keys.length === 0) return
    for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key }))
  }
}

/** awscli v2 (Debian) with the lab's credentials; no AWS_CA_BUNDLE or profile of the caller's. */
export function awsEnv(lab: Record<string, string>): Record<string, string> {
  return {
    PATH: '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    AWS_ACCESS_KEY_ID: lab.S3_ACCESS_KEY as string,
    AWS_SECRET_ACCESS_KEY: lab.S3_SECRET_KEY as string,
    AWS_DEFAULT_REGION: lab.S3_REGION as string,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  }
}

export function awsArgs(lab: Record<string, string>, ...args: string[]): string[] {
  return ['--endpoint-url', lab.S3_ENDPOINT as string, '--no-cli-pager', ...args]
}

/** The swift CLI (python3-swiftclient) with v1 tempauth; no OS_* of the caller's. */
export function swiftArgs(lab: Record<string, string>, ...args: string[]): string[] {
  return ['-A', lab.SWIFT_V1_AUTH_URL as string, '-U', lab.SWIFT_V1_USER as string, '-K', lab.SWIFT_V1_KEY as string, ...args]
}

export const swiftEnv = { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' }

export async function ensureContainer(lab: Record<string, string>): Promise<void> {
  used = true
  await runOk('/usr/bin/swift', swiftArgs(lab, 'post', CONTAINER), { env: swiftEnv })
}

/** Deletes an object (and, for a large object, its segments) with the swift CLI. */
export async function swiftDelete(lab: Record<string, string>, name: string): Promise<void> {
  await runOk('/usr/bin/swift', swiftArgs(lab, 'delete', CONTAINER, name), { env: swiftEnv }).catch(() => {})
}

/** Removes the bench containers with everything in them, then creates the container again. */
export async function emptyContainer(lab: Record<string, string>): Promise<void> {
  // The agent puts segments in `<c>_segments`, the swift CLI (4.x) in `<c>+segments`.
  for (const container of [CONTAINER, `${CONTAINER}_segments`, `${CONTAINER}+segments`]) {
    await run('/usr/bin/swift', swiftArgs(lab, 'delete', container), { env: swiftEnv })
  }
  await ensureContainer(lab)
}

/** Removes this run's bucket and containers with everything in them, if the run made them. */
export async function removeRunStorage(lab: Record<string, string>): Promise<void> {
  if (!used) return
  await emptyBucket(lab).catch(() => {})
  await s3Client(lab)
    .send(new DeleteBucketCommand({ Bucket: BUCKET }))
    .catch(() => {})
  for (const container of [CONTAINER, `${CONTAINER}_segments`, `${CONTAINER}+segments`]) {
    await run('/usr/bin/swift', swiftArgs(lab, 'delete', container), { env: swiftEnv })
  }
}
