// Issue 15, figure 2 (peak while moving data; issue 8's figure 3 with the new measure): the peak
// resident memory of the agent for 100 MiB, 1 GiB and 4 GiB uploads to S3, in file mode (the
// script leaves a file) and in streaming mode (the script writes BACKUP_STREAM from a generator,
// so no 4 GiB source file is needed for it). A fresh agent per upload, so each peak belongs to
// one upload. The peak is the larger of the main process's VmHWM and the highest VmRSS summed
// over its process tree, sampled every 50 ms during the job (a helper process counts; the
// lifecycle scripts and the generator they start do not: they are the database's side).
import { join } from 'node:path'
import {
  GiB,
  jobId,
  log,
  MiB,
  NODE,
  requireFreeDisk,
  ROOT,
  round,
  runJobToEnd,
  s3Destination,
  SOURCE_BACK,
  SOURCE_IN,
  sourceFile,
  startAgent,
  triggerBody,
  WORK,
  type Row,
} from './lib.ts'
import { sampleTreeRss, treeRss, vmHwm } from './proc.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'

export const GENERATOR = join(ROOT, 'bench/generator.ts')
const TARGET_BYTES = 100e6

export async function memory(lab: Record<string, string>): Promise<Row[]> {
  // BENCH_MEMORY_SIZES (MiB, comma-separated) and BENCH_MEMORY_MODES (file,stream) narrow it for investigation.
  const sizes = (process.env.BENCH_MEMORY_SIZES ?? '100,1024,4096').split(',').map((m) => Number(m) * MiB)
  const modes = (process.env.BENCH_MEMORY_MODES ?? 'file,stream').split(',') as ('file' | 'stream')[]
  // The 4 GiB source file, the 4 GiB object in the lab's Swift (same disk here), and a margin.
  requireFreeDisk(WORK, 2 * Math.max(...sizes) + 2 * GiB, 'the memory figure (4 GiB source file + 4 GiB object)')
  await ensureBucket(lab)
  const rows: Row[] = []
  for (const mode of modes) {
    const peaks: number[] = []
    for (const size of sizes) {
      const src = mode === 'file' ? sourceFile(size) : ''
      const agent = await startAgent({
        scripts:
          mode === 'file'
            ? { backup: SOURCE_IN, 'backup-cleanup': SOURCE_BACK }
            : { backup: `"${NODE}" "${GENERATOR}" "$size" 0 "$BACKUP_STREAM"` },
      })
      try {
        const idle = treeRss(agent.pid, agent.scriptsDir).bytes
        const sampler = sampleTreeRss(agent.pid, agent.scriptsDir)
        let sampled: ReturnType<ReturnType<typeof sampleTreeRss>['stop']>
        let job: Awaited<ReturnType<typeof runJobToEnd>>
        try {
          job = await runJobToEnd(agent, 'backup', triggerBody(jobId(), s3Destination(lab, BUCKET), { src, size: String(size) }), 100)
        } finally {
          sampled = sampler.stop()
        }
        if (job.body.filesize.size < size) throw new Error(`uploaded ${job.body.filesize.size} bytes, expected ${size}`)
        const hwm = vmHwm(agent.pid)
        const peak = Math.max(hwm, sampled.maxBytes)
        peaks.push(peak)
        log(
          `memory ${mode} ${round(size / MiB, 0)} MiB: peak ${round(peak / 1e6, 1)} MB (main VmHWM ${round(hwm / 1e6, 1)} MB, tree max ${round(sampled.maxBytes / 1e6, 1)} MB over ${sampled.samples} samples, up to ${sampled.maxProcesses} processes, at ${sampled.atPeak.ms} ms: ${sampled.atPeak.processes.join(' + ')}; idle ${round(idle / 1e6, 1)} MB), ${round(job.ms / 1000)} s`,
        )
        rows.push({
          figure: `peak RSS, process tree, ${mode} mode, ${size >= GiB ? `${size / GiB} GiB` : `${size / MiB} MiB`} upload (MB)`,
          unit: 'MB',
          ours: round(peak / 1e6, 1),
          peer: null,
          ratio: round(peak / TARGET_BYTES),
          target: '≤ 100 MB',
          pass: peak <= TARGET_BYTES,
          detail: {
            idle_tree_MB: round(idle / 1e6, 1),
            main_vmhwm_MB: round(hwm / 1e6, 1),
            tree_max_MB: round(sampled.maxBytes / 1e6, 1),
            samples: sampled.samples,
            max_processes: sampled.maxProcesses,
            helper_processes: sampled.helpers,
            tree_at_peak: sampled.atPeak,
            job_ms: round(job.ms, 0),
          },
        })
      } finally {
        await agent.stop()
        await emptyBucket(lab)
      }
    }
    // Flat: the largest upload may not need much more than the smallest.
    const growth = (peaks.at(-1) as number) - (peaks[0] as number)
    rows.push({
      figure: `peak RSS growth 100 MiB → 4 GiB, ${mode} mode (MB)`,
      unit: 'MB',
      ours: round(growth / 1e6, 1),
      peer: null,
      ratio: null,
      target: 'flat (≤ 20 MB)',
      pass: growth <= 20e6,
    })
  }
  return rows
}
