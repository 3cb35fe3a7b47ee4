// Issue 6's streaming figure: a 1 GiB dump from a generator paced at the agent's measured upload
// speed, backed up in file mode (generate into a file, then upload) and in streaming mode
// (generate into BACKUP_STREAM while the agent uploads) to S3. Target: the streaming job's wall
// time ≤ 1.1 × max(generation time, upload time), and its peak RSS ≤ 100 MB.
import {
  GiB,
  jobId,
  log,
  median,
  NODE,
  requireFreeDisk,
  round,
  runJobToEnd,
  s3Destination,
  sleep,
  SOURCE_BACK,
  SOURCE_IN,
  sourceFile,
  stageMs,
  startAgent,
  triggerBody,
  WORK,
  type Row,
} from './lib.ts'
import { GENERATOR } from './memory.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'

/** Between a fresh agent's first 200 on /status and the streaming job's trigger. */
const SETTLE_MS = 1000

export async function streaming(lab: Record<string, string>, rounds = 2): Promise<Row[]> {
  const size = GiB
  requireFreeDisk(WORK, 4 * size, 'the streaming figure')
  await ensureBucket(lab)
  const src = sourceFile(size)
  const backup = [
    'case "$mode" in',
    `  link) ${SOURCE_IN} ;;`,
    `  file) "${NODE}" "${GENERATOR}" "$size" "$rate" "$5.bin" ;;`,
    `  stream) "${NODE}" "${GENERATOR}" "$size" "$rate" "$BACKUP_STREAM" ;;`,
    'esac',
  ].join('\n')
  const params = (mode: string, rate = 0) => ({ mode, src, size: String(size), rate: String(Math.round(rate)) })

  // The upload speed: a file-mode upload of a file that is already there.
  const uploads: number[] = []
  const fileWall: number[] = []
  const streamWall: number[] = []
  const streamPeak: number[] = []
  let rate = 0
  {
    const agent = await startAgent({ scripts: { backup, 'backup-cleanup': SOURCE_BACK } })
    try {
      const job = await runJobToEnd(agent, 'backup', triggerBody(jobId(), s3Destination(lab, BUCKET), params('link')))
      uploads.push(stageMs(job.stages, 'upload', 'backup-cleanup'))
      rate = size / (uploads[0]! / 1000)
      log(`streaming: upload speed ${round(rate / 1e6, 1)} MB/s (upload stage ${round(uploads[0]! / 1000)} s)`)
      await emptyBucket(lab)
    } finally {
      await agent.stop()
    }
  }
  const nominalGeneration = (size / rate) * 1000
  // The dump's generation as measured: file mode's backup stage, the generator paced at `rate`
  // writing the file (its process start and pacing included, which the streaming job pays too).
  const generations: number[] = []
  for (let r = 1; r <= rounds; r++) {
    // File mode: generate into the file, then upload it.
    {
      const agent = await startAgent({ scripts: { backup } })
      try {
        const job = await runJobToEnd(agent, 'backup', triggerBody(jobId(), s3Destination(lab, BUCKET), params('file', rate)))
        uploads.push(stageMs(job.stages, 'upload', 'backup-cleanup'))
        generations.push(stageMs(job.stages, 'backup', 'upload'))
        fileWall.push(job.ms)
        log(
          `streaming round ${r}: file mode ${round(job.ms / 1000)} s (generation ${round(generations.at(-1)! / 1000)} s, upload ${round(uploads.at(-1)! / 1000)} s)`,
        )
      } finally {
        await agent.stop()
        await emptyBucket(lab)
      }
    }
    // Streaming mode, a fresh agent so the peak RSS is this job's. It is given a moment to finish
    // starting (the agent loads its body checks just after it listens): a manager triggers an
    // agent that has been up for a while, and the figure is about overlap, not a process's start.
    {
      const agent = await startAgent({ scripts: { backup } })
      try {
        await sleep(SETTLE_MS)
        const job = await runJobToEnd(agent, 'backup', triggerBody(jobId(), s3Destination(lab, BUCKET), params('stream', rate)))
        if (!String(job.body.filename).endsWith('.osb') || job.body.filesize.size < size)
          throw new Error(`the streaming job stored ${job.body.filename} of ${job.body.filesize.size} bytes`)
        streamWall.push(job.ms)
        streamPeak.push(agent.peakRss())
        log(`streaming round ${r}: streaming mode ${round(job.ms / 1000)} s, peak RSS ${round(streamPeak.at(-1)! / 1e6, 1)} MB`)
      } finally {
        await agent.stop()
        await emptyBucket(lab)
      }
    }
  }
  const upload = median(uploads)
  const generation = median(generations)
  const bound = Math.max(generation, upload)
  const wall = median(streamWall)
  const peak = Math.max(...streamPeak)
  return [
    {
      figure: 'streaming 1 GiB paced dump, wall time (s, peer = file mode)',
      unit: 's',
      ours: round(wall / 1000),
      peer: round(median(fileWall) / 1000),
      ratio: round(wall / bound),
      target: '≤ 1.1× max(generation, upload)',
      pass: wall <= 1.1 * bound,
      detail: {
        generation_s: round(generation / 1000),
        nominal_generation_s: round(nominalGeneration / 1000),
        upload_s: round(upload / 1000),
        upload_rounds_ms: uploads.map((u) => round(u, 0)),
        stream_ms: streamWall.map((w) => round(w, 0)),
        file_ms: fileWall.map((w) => round(w, 0)),
        rate_MBps: round(rate / 1e6, 1),
      },
    },
    {
      figure: 'streaming 1 GiB, peak RSS (MB)',
      unit: 'MB',
      ours: round(peak / 1e6, 1),
      peer: null,
      ratio: round(peak / 100e6),
      target: '≤ 100 MB',
      pass: peak <= 100e6,
    },
  ]
}
