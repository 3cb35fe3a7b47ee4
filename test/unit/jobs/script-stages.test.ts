// When a script stage's start reaches the store. Through the script helper the stage's entry and
// its held script's pid go in one write, made before the script can act; where Node starts the
// script itself (it runs before its pid is known), and for a stage with a stream (set up before
// its script), the stage's entry is stored on its own first. Real scripts, a real store.
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { Job } from '../../../src/jobs/job.ts'
import { newJob } from '../../../src/jobs/job.ts'
import { JobRegistry } from '../../../src/jobs/registry.ts'
import { runJob } from '../../../src/jobs/runner.ts'
import { logFields } from '../../../src/jobs/stages.ts'
import { JobStore } from '../../../src/jobs/store.ts'
import { createLogger } from '../../../src/log.ts'
import { useScriptHelper } from '../../../src/scripts/spawner.ts'
import { configUnder } from '../../helpers/processes.ts'

const STAGES = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
const roots: string[] = []
after(() => {
  useScriptHelper(true)
  for (const root of roots) rmSync(root, { recursive: true, force: true })
})

interface Write {
  state: string
  attempted: string[]
  script: Job['script']
  /** The stages whose script had run when the write was made. */
  ran: string[]
}

/** Runs a no-op backup whose scripts leave a trace; every store write, as it was made. */
async function writesOfBackup(): Promise<Write[]> {
  const root = mkdtempSync(join(tmpdir(), 'script-stages-'))
  roots.push(root)
  mkdirSync(join(root, 'scripts'))
  const trace = join(root, 'trace')
  for (const name of STAGES) {
    writeFileSync(join(root, 'scripts', `${name}.sh`), `#!/bin/bash\necho ${name} >> '${trace}'\n`)
    chmodSync(join(root, 'scripts', `${name}.sh`), 0o755)
  }
  const registry = new JobRegistry(2, new JobStore(join(root, 'state')))
  const writes: Write[] = []
  const publish = registry.publish.bind(registry)
  registry.publish = (job: Job, ...rest) => {
    const written = publish(job, ...rest)
    const ran = existsSync(trace)
      ? readFileSync(trace, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
      : []
    if (written) writes.push({ state: job.state, attempted: [...job.attempted], script: job.script && { ...job.script }, ran })
    return written
  }
  const request = {
    kind: 'backup' as const,
    id: 'stages',
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL' as const, skipStorage: true, filenamePrefix: '', filename: '' },
    database: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: {} },
  }
  const job = newJob(request, logFields('backup'))
  const entry = registry.start(job)
  if (typeof entry === 'string') throw new Error(entry)
  await runJob(job, entry.live.cancel.signal, { config: configUnder(root), registry, log: createLogger('silent'), agentEnv: {} })
  assert.equal(job.status, 'SUCCEEDED', job.errorMessage)
  return writes
}

/** The first write that shows the stage as the job's state. */
const firstOf = (writes: Write[], stage: string) => {
  const write = writes.find((w) => w.state === stage)
  assert.ok(write, `${stage} was stored`)
  return write
}

describe("a script stage's start in the store", () => {
  it('through the helper: the stage and its held pid in one write, before the script ran; a stream stage stored on entry first', async () => {
    useScriptHelper(true)
    const writes = await writesOfBackup()
    for (const stage of STAGES) {
      const first = firstOf(writes, stage)
      assert.ok(first.attempted.includes(stage))
      assert.ok(!first.ran.includes(stage), `${stage}: stored before its script ran`)
      if (stage === 'backup') assert.equal(first.script, undefined, 'backup (a stream stage): its entry is stored on its own')
      else assert.deepEqual([first.script?.stage, first.script?.held], [stage, true], `${stage}: entry and held pid in one write`)
    }
    // lock, check, cleanup, unlock: 2 writes each (with the pid, then running); backup 3; start and end
    assert.equal(
      writes.length,
      4 * 2 + 3 + 2,
      `writes: ${writes.map((w) => `${w.state}${w.script ? `:${w.script.held ? 'held' : 'run'}` : ''}`).join(' ')}`,
    )
  })

  it("through Node's spawn: every stage's entry stored before its script starts, its pid after", async () => {
    useScriptHelper(false)
    const writes = await writesOfBackup()
    for (const stage of STAGES) {
      const first = firstOf(writes, stage)
      assert.equal(first.script, undefined, `${stage}: entry stored on its own`)
      assert.ok(!first.ran.includes(stage), `${stage}: stored before its script ran`)
      const withPid = writes.find((w) => w.script?.stage === stage)
      assert.equal(withPid?.script?.held, undefined, `${stage}: its pid stored, not held`)
    }
  })
})
