// Issue 15, figure 2 (memory after work): a fresh agent runs BENCH_JOB_MEMORY_JOBS (1000) backups
// one after another, polled every 2 ms by the shared client; BENCH_JOB_MEMORY_UPLOADS (5) of them,
// spread evenly from the first, upload a 1 MiB file to the lab's S3, the rest are no-op 5-script
// backups with skipStorage. 3 s after the poll that saw the last one end, the summed VmRSS of its
// process tree. The Go agent runs the same jobs from the same client beside it.
import { HttpClient, timeBackup, type Target } from './client.ts'
import { goAgentPath, GO_SKIPPED, startGoAgent } from './go-agent.ts'
import { BenchError, jobId, log, round, sleep, startAgent, triggerBody, type Row } from './lib.ts'
import { treeRss } from './proc.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'

const TARGET_BYTES = 80e6
const SETTLE_MS = 3000
/** The backup script: a 1 MiB file for the S3 jobs (the Go agent does not make the job's folder). */
const SCRIPTS = { backup: 'if [ "$mode" = file ]; then mkdir -p "$dir/$6" && head -c 1048576 /dev/urandom > "$dir/$6/$5.bin"; fi' }

/**
 * The lab's S3 as both agents take it: a scheme in the endpoint, useSSL false and skipSSL true
 * (the Go agent reads only skipSSL; ours takes all three, which agree).
 */
function destination(lab: Record<string, string>, skipStorage: boolean): Record<string, unknown> {
  return {
    type: 'S3',
    bucket: BUCKET,
    endpoint: `http://${new URL(lab.S3_ENDPOINT as string).host}`,
    region: lab.S3_REGION,
    useSSL: false,
    skipSSL: true,
    authKey: lab.S3_ACCESS_KEY,
    authSecret: lab.S3_SECRET_KEY,
    filenamePrefix: 'bench/',
    skipStorage,
  }
}

interface AfterJobs {
  rssBytes: number
  processes: number
  seconds: number
  uploads: { status: string; error?: string }[]
}

async function runJobs(
  target: Target,
  lab: Record<string, string>,
  jobs: number,
  uploads: number,
  mustUpload: boolean,
): Promise<AfterJobs> {
  const client = new HttpClient()
  const uploadAt = new Set(Array.from({ length: uploads }, (_, k) => Math.floor((k * jobs) / uploads)))
  const outcome: AfterJobs['uploads'] = []
  const started = performance.now()
  for (let i = 0; i < jobs; i++) {
    const upload = uploadAt.has(i)
    const body = triggerBody(jobId(), destination(lab, !upload), upload ? { mode: 'file', dir: target.backupDir } : {}, 'backup', 'none')
    const job = await timeBackup(client, target, body)
    if (upload)
      outcome.push({ status: job.status, ...(job.status === 'SUCCEEDED' ? {} : { error: String(job.body.error_message).slice(0, 300) }) })
    // Ours must do every job; the Go agent's uploads fail at the lab (below), its no-op jobs may not.
    if (job.status !== 'SUCCEEDED' && (mustUpload || !upload))
      throw new BenchError(`${target.name}: job ${i + 1} of ${jobs} ${job.status}: ${job.body.error_message ?? ''}\n${target.logTail()}`)
  }
  const seconds = (performance.now() - started) / 1000
  client.reset()
  await sleep(SETTLE_MS)
  const rss = treeRss(target.pid, target.scriptsDir)
  return { rssBytes: rss.bytes, processes: rss.counted.length, seconds, uploads: outcome }
}

export async function jobMemory(lab: Record<string, string>): Promise<Row[]> {
  const jobs = Number(process.env.BENCH_JOB_MEMORY_JOBS ?? 1000)
  const uploads = Math.min(jobs, Number(process.env.BENCH_JOB_MEMORY_UPLOADS ?? 5))
  await ensureBucket(lab)
  let ours: AfterJobs
  let go: AfterJobs | undefined
  try {
    const agent = await startAgent({ scripts: SCRIPTS })
    try {
      ours = await runJobs(agent, lab, jobs, uploads, true)
    } finally {
      await agent.stop()
    }
    log(
      `memory after ${jobs} jobs (${uploads} S3 uploads): ours ${round(ours.rssBytes / 1e6, 1)} MB (${ours.processes} processes; jobs took ${round(ours.seconds, 1)} s)`,
    )
    if (goAgentPath()) {
      const agent = await startGoAgent({ scripts: SCRIPTS })
      try {
        go = await runJobs(agent, lab, jobs, uploads, false)
      } finally {
        await agent.stop()
      }
      log(
        `memory after ${jobs} jobs: Go agent ${round(go.rssBytes / 1e6, 1)} MB (jobs took ${round(go.seconds, 1)} s; its uploads: ${go.uploads.map((u) => u.status).join(', ')})`,
      )
    }
  } finally {
    await emptyBucket(lab)
  }
  return [
    {
      figure: `RSS after ${jobs} jobs (${uploads} S3), process tree, 3 s after the last (MB)`,
      unit: 'MB',
      ours: round(ours.rssBytes / 1e6, 1),
      peer: go ? round(go.rssBytes / 1e6, 1) : null,
      ratio: go ? round(ours.rssBytes / go.rssBytes) : round(ours.rssBytes / TARGET_BYTES),
      target: '≤ 80 MB',
      pass: ours.rssBytes <= TARGET_BYTES,
      detail: {
        ours: { processes: ours.processes, jobs_s: round(ours.seconds, 1) },
        go: go ? { processes: go.processes, jobs_s: round(go.seconds, 1), uploads: go.uploads } : GO_SKIPPED,
        peer: go
          ? "the Go agent after the same jobs from the same client; its S3 uploads reach the lab and are refused there (minio-go sends aws-chunked bodies, which Swift's s3api does not take), so its S3 client has run but stored nothing"
          : GO_SKIPPED,
      },
    },
  ]
}
