// An agent SIGKILLed at the instant a script is recorded but not yet let run (the store took its
// pid, `go` was never written): the script never runs, and a restarted agent's recovery runs the
// stage exactly once. The agent is a real process (test/helpers/agent-dies-at.ts: the runner,
// store and script helper as shipped) killed right after that store write; recovery is the real
// one, on the store it left. Also: the held child still there when recovery looks (its helper
// stopped), the held child killed with the agent (a service manager's kill of the whole unit),
// and the agent killed just after the script was seen to run.
import { spawn } from 'node:child_process'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RecoveryRecord } from '../../../src/jobs/recovery-record.ts'
import { finishRecovery, markInterrupted } from '../../../src/jobs/recovery.ts'
import { JobRegistry } from '../../../src/jobs/registry.ts'
import { JobStore } from '../../../src/jobs/store.ts'
import { createLogger } from '../../../src/log.ts'
import { isHeldScript } from '../../../src/scripts/held.ts'
import { isZombie, processStartTime } from '../../../src/scripts/process-group.ts'
import { scriptHelperEnabled } from '../../../src/scripts/spawner.ts'
import { configUnder } from '../../helpers/processes.ts'

const STAGES = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
const FIXTURE = join(import.meta.dirname, '../../helpers/agent-dies-at.ts')

/** A root with tracing scripts (each appends its stage to `trace`); runs the agent until it dies. */
async function agentKilledAt(stage: string, moment: 'held' | 'held-stopped' | 'running') {
  const root = mkdtempSync(join(tmpdir(), 'held-crash-'))
  mkdirSync(join(root, 'scripts'))
  mkdirSync(join(root, 'b'))
  const trace = join(root, 'trace')
  for (const name of STAGES) {
    writeFileSync(join(root, 'scripts', `${name}.sh`), `#!/bin/bash\necho ${name} >> '${trace}'\n`)
    chmodSync(join(root, 'scripts', `${name}.sh`), 0o755)
  }
  const agent = spawn(process.execPath, [FIXTURE, root, stage, moment], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  agent.stdout.on('data', (chunk: Buffer) => (out += chunk))
  const signal = await new Promise((resolve) => agent.on('close', (_code, signal) => resolve(signal)))
  assert.equal(signal, 'SIGKILL', `the agent died at the instant: ${out}`)
  const pid = Number(/^pid (\d+)$/m.exec(out)?.[1])
  const helper = Number(/^helper (\d+)$/m.exec(out)?.[1])
  const ran = () =>
    existsSync(trace)
      ? readFileSync(trace, 'utf8')
          .split('\n')
          .filter((l) => l !== '')
      : []
  return { root, pid, helper, ran }
}

/** Exited (this machine's pid 1 may leave it a zombie for a while). */
const gone = (pid: number) => processStartTime(pid) === undefined || isZombie(pid)

/** The restarted agent: reads the store the killed one left and recovers (both phases). */
async function restart(root: string): Promise<RecoveryRecord> {
  const config = configUnder(root, { hook_timeout_seconds: '5' })
  const store = new JobStore(join(root, 'state'))
  const registry = new JobRegistry(2, store)
  const before = JSON.parse(store.all()[0]?.record ?? '{}') as RecoveryRecord
  await finishRecovery(markInterrupted(registry.load(), registry), { config, registry, log: createLogger('silent'), agentEnv: {} })
  const after = JSON.parse(store.all()[0]?.record ?? '{}') as RecoveryRecord
  assert.deepEqual(after.pending, [], 'nothing owed after recovery')
  return before
}

describe('an agent killed between storing a script pid and letting it run', () => {
  it('the helper is used on this machine (Perl is there)', () => {
    assert.equal(scriptHelperEnabled(), true, '/usr/bin/perl is missing: the held path would go untested')
  })

  it('unlock: the held child exits without running; recovery runs the unlock exactly once', async () => {
    const { root, pid, helper, ran } = await agentKilledAt('post-backup-unlock', 'held')
    await sleep(300) // the helper saw its stdin end; the child the end of its go pipe
    assert.ok(gone(pid) && gone(helper), 'the held child and the helper ended')
    assert.deepEqual(ran(), STAGES.slice(0, 4), 'the unlock never ran')
    const record = await restart(root)
    assert.equal(record.script?.pid, pid)
    assert.equal(record.script?.held, true, 'stored as held')
    assert.deepEqual(ran(), STAGES, 'the unlock ran once, in recovery')
  })

  it('unlock, the held child still there when recovery looks: removed, never runs; the unlock runs exactly once', async () => {
    const { root, pid, helper, ran } = await agentKilledAt('post-backup-unlock', 'held-stopped')
    try {
      assert.ok(isHeldScript(pid), 'still there, still held')
      await restart(root)
      assert.ok(gone(pid), 'recovery removed it')
      process.kill(helper, 'SIGCONT') // the helper reads the end of the dead agent's pipe and ends
      await sleep(300)
      assert.ok(gone(helper))
      assert.deepEqual(ran(), STAGES, 'the unlock ran once, in recovery')
    } finally {
      process.kill(helper, 'SIGKILL')
    }
  })

  it('lock: the held lock never runs; recovery runs the unlock (lock was attempted) and not the lock', async () => {
    const { root, pid, ran } = await agentKilledAt('pre-backup-lock', 'held')
    await restart(root)
    assert.deepEqual(ran(), ['post-backup-unlock'])
    assert.ok(gone(pid), 'the held child is gone')
  })

  it('the held child killed with the agent (a whole unit killed): gone, it still counts as never run', async () => {
    const { root, pid, ran } = await agentKilledAt('post-backup-unlock', 'held')
    process.kill(pid, 'SIGKILL')
    await sleep(100)
    assert.ok(gone(pid))
    await restart(root)
    assert.deepEqual(ran(), STAGES, 'the unlock ran once, in recovery')
  })

  it('killed just after the unlock was seen to run: recovery does not run it again', async () => {
    const { root, ran } = await agentKilledAt('post-backup-unlock', 'running')
    const record = await restart(root)
    assert.equal(record.script?.stage, 'post-backup-unlock')
    assert.equal(record.script?.held, undefined, 'stored as running')
    assert.deepEqual(ran(), STAGES, 'exactly once: by the killed agent')
  })
})
