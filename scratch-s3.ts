import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { S3Storage } from './src/storage/s3.ts'
import { awsArgs, awsEnv, BUCKET, ensureBucket } from './bench/storage.ts'
import { ensureLab, run, sourceFile, GiB } from './bench/lib.ts'
const lab = ensureLab()
await ensureBucket(lab)
const src = process.env.SRC ?? sourceFile(GiB)
const dest = { type: 'S3', bucket: BUCKET, endpoint: lab.S3_ENDPOINT, endpointUrl: lab.S3_ENDPOINT, useSSL: false, region: 'us-east-1', authKey: lab.S3_ACCESS_KEY, authSecret: lab.S3_SECRET_KEY, skipStorage: false, filenamePrefix: '', filename: '' } as any
const storage = new S3Storage(dest, '', { storageRetries: 3 } as any)
const t = async (label: string, f: () => Promise<unknown>) => { const s = performance.now(); await f(); console.log(label.padEnd(30), ((performance.now() - s) / 1000).toFixed(2), 's'); }
for (let round = 0; round < Number(process.env.ROUNDS ?? 2); round++) {
  await t('sha256File', async () => { const h = createHash('sha256'); await pipeline(createReadStream(src, { highWaterMark: 1024 * 1024 }), h) })
  await t('agent S3Storage.upload', () => storage.upload(src, 'x-agent.bin', { sha256: 'abc' }))
  await t('aws s3 cp up', () => run('/usr/bin/aws', awsArgs(lab, 's3', 'cp', src, `s3://${BUCKET}/x-aws.bin`), { env: awsEnv(lab) }))
  await t('agent S3Storage.download', () => storage.download('x-agent.bin', '/tmp/osb-bench/dl-agent.bin'))
  await t('aws s3 cp down', () => run('/usr/bin/aws', awsArgs(lab, 's3', 'cp', `s3://${BUCKET}/x-aws.bin`, '/tmp/osb-bench/dl-aws.bin'), { env: awsEnv(lab) }))
}
