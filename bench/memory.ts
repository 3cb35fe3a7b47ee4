// Figure 3 of issue 8: peak RSS (VmHWM) of the agent process for 100 MiB, 1 GiB and 4 GiB
// uploads to S3, in file mode (the script leaves a file) and in streaming mode (the script
// writes BACKUP_STREAM from a generator, so no 4 GiB source file is needed for it). A fresh
// agent per upload, so each peak belongs to one upload.
import { join } from 'node:path'
import { GiB, jobId, log, MiB, NODE, requireFreeDisk, ROOT, round, runJobToEnd, s3Destination, sourceFile, startAgent, triggerBody, WORK, type Row } from './lib.ts'
import { BUCKET, emptyBucket, ensureBucket } from './storage.ts'

export const GENERATOR = join(ROOT, 'bench/generator.ts')
const TARGET_BYTES = 150 * 1e6

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
        scripts: { backup: mode === 'file' ? 'ln "$src" "$5.bin"' : `"${NODE}" "${GENERATOR}" "$size" 0 "$BACKUP_STREAM"` },
      })
      try {
        const idle = agent.peakRss()
        const job = await runJobToEnd(agent, 'backup', triggerBody(jobId(), s3Destination(lab, BUCKET), { src, size: String(size) }), 100)
        if (job.body.filesize.size < size) throw new Error(`uploaded ${job.body.filesize.size} bytes, expected ${size}`)
        const peak = agent.peakRss()
        peaks.push(peak)
        log(`memory ${mode} ${round(size / MiB, 0)} MiB: peak RSS ${round(peak / 1e6, 1)} MB (idle ${round(idle / 1e6, 1)} MB), ${round(job.ms / 1000)} s`)
        rows.push({
          figure: `peak RSS, ${mode} mode, ${size >= GiB ? `${size / GiB} GiB` : `${size / MiB} MiB`} upload (MB)`,
          unit: 'MB',
          ours: round(peak / 1e6, 1),
          peer: null,
          ratio: round(peak / TARGET_BYTES),
          target: '≤ 150 MB',
          pass: peak <= TARGET_BYTES,
          detail: { idle_peak_MB: round(idle / 1e6, 1), job_ms: round(job.ms, 0) },
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
