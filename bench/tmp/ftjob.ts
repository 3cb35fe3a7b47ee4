// investigation: ftrace timeline of warm no-op jobs (not committed)
import { HttpClient, timeBackup } from '../client.ts'
import { buildRelease, startAgent, triggerBody, jobId, s3Destination, STAGES } from '../lib.ts'
import { writeFileSync, openSync, writeSync } from 'node:fs'
const T = '/sys/kernel/tracing'
const DUMMY_LAB = { S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'us-east-1', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' }
const body = () => triggerBody(jobId(), s3Destination(DUMMY_LAB, 'none', { skipStorage: true }), {}, 'backup', 'none')
buildRelease()
const scripts = Object.fromEntries(
  STAGES.map((s) => [s, `echo "script ${s} start" > ${T}/trace_marker; echo "script ${s} end" > ${T}/trace_marker`]),
)
const agent = await startAgent({ scripts })
const client = new HttpClient()
const target = { name: 'ours', url: agent.url, basic: agent.basic } as any
for (let i = 0; i < 30; i++) await timeBackup(client, target, body(), 2)
const marker = openSync(`${T}/trace_marker`, 'w')
writeFileSync(`${T}/trace`, '')
writeFileSync(`${T}/buffer_size_kb`, '20000')
for (const e of [
  'sched/sched_wakeup',
  'sched/sched_switch',
  'sched/sched_process_fork',
  'sched/sched_process_exec',
  'sched/sched_process_exit',
])
  writeFileSync(`${T}/events/${e}/enable`, '1')
writeFileSync(`${T}/tracing_on`, '1')
for (let i = 0; i < 5; i++) {
  writeSync(marker, 'client trigger\n')
  const j = await timeBackup(client, target, body(), 2)
  writeSync(marker, `client saw end ${j.ms.toFixed(1)}\n`)
}
writeFileSync(`${T}/tracing_on`, '0')
for (const e of [
  'sched/sched_wakeup',
  'sched/sched_switch',
  'sched/sched_process_fork',
  'sched/sched_process_exec',
  'sched/sched_process_exit',
])
  writeFileSync(`${T}/events/${e}/enable`, '0')
console.log('agent pid', agent.pid)
client.reset()
await agent.stop()
