// investigation: a timeline of warm no-op jobs (not committed)
import { HttpClient, timeBackup } from '../client.ts'
import { buildRelease, startAgent, triggerBody, jobId, s3Destination, STAGES } from '../lib.ts'
import { truncateSync, appendFileSync } from 'node:fs'
const DUMMY_LAB = { S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'us-east-1', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' }
const body = () => triggerBody(jobId(), s3Destination(DUMMY_LAB, 'none', { skipStorage: true }), {}, 'backup', 'none')
buildRelease()
const scripts = Object.fromEntries(
  STAGES.map((s) => [
    s,
    `echo "$EPOCHREALTIME script ${s} start" >> /tmp/tl/tl.log; echo "$EPOCHREALTIME script ${s} end" >> /tmp/tl/tl.log`,
  ]),
)
const agent = await startAgent({ scripts })
const client = new HttpClient()
const target = { name: 'ours', url: agent.url, basic: agent.basic } as any
for (let i = 0; i < 30; i++) await timeBackup(client, target, body())
truncateSync('/tmp/tl/tl.log', 0)
const t = () => ((performance.timeOrigin + performance.now()) / 1000).toFixed(6)
for (let i = 0; i < 10; i++) {
  appendFileSync('/tmp/tl/tl.log', `${t()} client trigger\n`)
  const j = await timeBackup(client, target, body())
  appendFileSync('/tmp/tl/tl.log', `${t()} client saw end ${j.ms.toFixed(1)} polls ${j.polls}\n`)
}
client.reset()
await agent.stop()
