// Figure 2 of issue 8: a 1 GiB file up and down through the agent against the tool an operator
// would otherwise use, to the same server in the same run, alternating, three rounds each:
// S3: `/usr/bin/aws s3 cp` (Debian awscli v2). Swift: `swift upload/download` (v1 tempauth, SLO
// with the agent's segment size). The agent's time is POST (or PUT) to the poll that sees
// SUCCEEDED, with no-op scripts: what an operator waits for, checksums included.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import {
  GiB,
  jobId,
  log,
  median,
  MiB,
  requireFreeDisk,
  round,
  runJobToEnd,
  runOk,
  s3Destination,
  SOURCE_BACK,
  SOURCE_IN,
  sourceFile,
  startAgent,
  swiftDestination,
  triggerBody,
  WORK,
  type Row,
} from './lib.ts'
import {
  awsArgs,
  awsEnv,
  BUCKET,
  CONTAINER,
  emptyBucket,
  emptyContainer,
  ensureBucket,
  ensureContainer,
  swiftArgs,
  swiftEnv,
} from './storage.ts'

/** Segment size for the Swift figure, the agent's and the swift CLI's (an SLO of 1 GiB / this). */
export const SWIFT_SEGMENT_BYTES = Number(process.env.BENCH_SWIFT_SEGMENT ?? 128 * MiB)

export async function transfers(lab: Record<string, string>, kind: 's3' | 'swift', rounds: number): Promise<Row[]> {
  const size = GiB
  requireFreeDisk(WORK, 4 * size, `the ${kind} transfer figure`)
  const src = sourceFile(size)
  const env: Record<string, string> =
    kind === 'swift' ? { swift_segment_bytes: String(SWIFT_SEGMENT_BYTES), swift_segment_threshold_bytes: String(SWIFT_SEGMENT_BYTES) } : {}
  const agent = await startAgent({ scripts: { backup: SOURCE_IN, 'backup-cleanup': SOURCE_BACK }, env })
  if (kind === 's3') await ensureBucket(lab)
  else await ensureContainer(lab)
  const destination = (extra: Record<string, unknown> = {}) =>
    kind === 's3' ? s3Destination(lab, BUCKET, extra) : swiftDestination(lab, CONTAINER, extra)
  const times = { agentUp: [] as number[], peerUp: [] as number[], agentDown: [] as number[], peerDown: [] as number[] }
  const peerObject = `peer/${kind}-1gib.bin`
  const download = join(WORK, 'peer-download.bin')
  try {
    for (let r = 1; r <= rounds; r++) {
      const agentFirst = r % 2 === 1
      const agentUp = async () => {
        const up = await runJobToEnd(agent, 'backup', triggerBody(jobId(), destination(), { src }))
        times.agentUp.push(up.ms)
        return up.body.filename as string
      }
      const peerUp = async () => {
        const args =
          kind === 's3'
            ? awsArgs(lab, 's3', 'cp', '--only-show-errors', src, `s3://${BUCKET}/${peerObject}`)
            : swiftArgs(
                lab,
                'upload',
                CONTAINER,
                src,
                '--object-name',
                peerObject,
                '--segment-size',
                String(SWIFT_SEGMENT_BYTES),
                '--use-slo',
              )
        times.peerUp.push(
          (await runOk(kind === 's3' ? '/usr/bin/aws' : '/usr/bin/swift', args, { env: kind === 's3' ? awsEnv(lab) : swiftEnv })).ms,
        )
      }
      const agentDown = async (filename: string) => {
        const id = jobId()
        const down = await runJobToEnd(agent, 'restore', triggerBody(id, destination({ filename }), {}, 'restore'))
        if (down.body.checksum_verified !== true) throw new Error(`restore ${id} did not verify its checksum`)
        times.agentDown.push(down.ms)
        rmSync(join(agent.restoreDir, id), { recursive: true, force: true })
      }
      const peerDown = async () => {
        const args =
          kind === 's3'
            ? awsArgs(lab, 's3', 'cp', '--only-show-errors', `s3://${BUCKET}/${peerObject}`, download)
            : swiftArgs(lab, 'download', CONTAINER, peerObject, '-o', download)
        times.peerDown.push(
          (await runOk(kind === 's3' ? '/usr/bin/aws' : '/usr/bin/swift', args, { env: kind === 's3' ? awsEnv(lab) : swiftEnv })).ms,
        )
        rmSync(download, { force: true })
      }
      let filename: string
      if (agentFirst) {
        filename = await agentUp()
        await peerUp()
        await agentDown(filename)
        await peerDown()
      } else {
        await peerUp()
        filename = await agentUp()
        await peerDown()
        await agentDown(filename)
      }
      log(
        `${kind} round ${r}: up agent ${round(times.agentUp.at(-1)! / 1000)} s, peer ${round(times.peerUp.at(-1)! / 1000)} s; down agent ${round(times.agentDown.at(-1)! / 1000)} s, peer ${round(times.peerDown.at(-1)! / 1000)} s`,
      )
      if (kind === 's3') await emptyBucket(lab)
      else await emptyContainer(lab)
    }
  } finally {
    rmSync(download, { force: true })
    await agent.stop()
  }
  const peerName = kind === 's3' ? 'aws s3 cp' : `swift CLI, SLO ${SWIFT_SEGMENT_BYTES / MiB} MiB`
  const row = (direction: 'upload' | 'download', ours: number[], peer: number[]): Row => {
    const o = median(ours) / 1000
    const p = median(peer) / 1000
    return {
      figure: `${kind === 's3' ? 'S3' : 'Swift'} ${direction} 1 GiB (s, vs ${peerName})`,
      unit: 's',
      ours: round(o),
      peer: round(p),
      ratio: round(o / p),
      target: '≤ 1.1× peer',
      pass: o / p <= 1.1,
      detail: {
        agent_ms: ours.map((v) => round(v, 0)),
        peer_ms: peer.map((v) => round(v, 0)),
        agent_MBps: round(size / 1e6 / o, 1),
        peer_MBps: round(size / 1e6 / p, 1),
      },
    }
  }
  return [row('upload', times.agentUp, times.peerUp), row('download', times.agentDown, times.peerDown)]
}
