// investigation: what grows in the main process during a streamed upload (not committed)
import { readFileSync } from 'node:fs'
import { buildRelease, ensureLab, startAgent, triggerBody, jobId, s3Destination, NODE, MiB, sleep, trigger } from '../lib.ts'
import { GENERATOR } from '../memory.ts'
import { BUCKET, ensureBucket, emptyBucket } from '../storage.ts'
import { treeRss } from '../proc.ts'
buildRelease()
const lab = ensureLab()
await ensureBucket(lab)
const status = (pid: number) => Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => /^(VmRSS|RssAnon|RssFile|VmHWM)/.test(l)).map((l) => [l.split(':')[0], Math.round(Number(l.split(/\s+/)[1]) / 1024 * 10) / 10]))
for (const size of (process.env.SIZES ?? '1024,4096').split(',').map(Number)) {
  const agent = await startAgent({ scripts: { backup: `"${NODE}" "${GENERATOR}" "$size" 0 "$BACKUP_STREAM"` } })
  const id = jobId()
  await trigger(agent, 'backup', triggerBody(id, s3Destination(lab, BUCKET), { size: String(size * MiB) }))
  const rows: string[] = []
  let max = 0
  for (let i = 0; ; i++) {
    const res = await fetch(`${agent.url}/backup/${id}`, { headers: { authorization: agent.basic } })
    const body = await res.json() as any
    const st = status(agent.pid)
    const tree = treeRss(agent.pid, agent.scriptsDir)
    max = Math.max(max, tree.bytes)
    if (i === 8 || body.status !== "RUNNING") rows.push(JSON.stringify(tree.counted.map((c) => [c.pid, Math.round(c.bytes / 1e5) / 10, c.command.slice(0, 60)])))
    if (i % 8 === 0 || body.status !== 'RUNNING') {
      const m = await (await fetch(`${agent.url}/metrics`, { headers: { authorization: agent.basic } })).text()
      const g = (n: string) => Math.round(Number(new RegExp(`^osb_backup_agent_${n} (\\S+)`, 'm').exec(m)?.[1] ?? NaN) / 1e5) / 10
      rows.push(`${(i / 4).toFixed(1)}s ${body.state} tree=${(tree.bytes / 1e6).toFixed(1)} n=${tree.counted.length} rss=${st.VmRSS} anon=${st.RssAnon} file=${st.RssFile} hwm=${st.VmHWM} heapTot=${g('nodejs_heap_size_total_bytes')} heapUsed=${g('nodejs_heap_size_used_bytes')} ext=${g('nodejs_external_memory_bytes')}`)
    }
    if (process.env.SNAP && (i === 20 || i === 90)) process.kill(agent.pid, 'SIGUSR2')
    if (body.status !== 'RUNNING') break
    await sleep(250)
  }
  await sleep(4000)
  const after = treeRss(agent.pid, agent.scriptsDir)
  console.log(`== ${size} MiB stream: tree max ${(max / 1e6).toFixed(1)} MB; 4 s after the end: tree ${(after.bytes / 1e6).toFixed(1)} MB, n=${after.counted.length}`)
  console.log(rows.join('\n'))
  await agent.stop()
  await emptyBucket(lab)
}
