// Recovery's list of steps still due, checked against rules written out here (not the stage
// table's code) and against what the runner itself would still have run, and the steps'
// bookkeeping: a step leaves `pending` only once it has run, and a store that refuses writes
// loses no step.
import { spawn } from 'node:child_process'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { loadConfig } from '../../../src/config.ts'
import { JobError } from '../../../src/errors.ts'
import { newJob, pollingBody } from '../../../src/jobs/job.ts'
import { bootId, readRecord, recoveryRecord, type RecoveryRecord } from '../../../src/jobs/recovery-record.ts'
import { finishRecovery, markInterrupted, stepsStillDue } from '../../../src/jobs/recovery.ts'
import { JobRegistry } from '../../../src/jobs/registry.ts'
import type { JobKind, JobRequest } from '../../../src/jobs/request.ts'
import { runStages } from '../../../src/jobs/runner.ts'
import type { StageContext } from '../../../src/jobs/stage-context.ts'
import { logFields, STAGES } from '../../../src/jobs/stages.ts'
import { JobStore, type StoredJob } from '../../../src/jobs/store.ts'
import { createLogger } from '../../../src/log.ts'
import { processStartTime } from '../../../src/scripts/process-group.ts'

/** The stage names of each kind, in order, with the role each plays in the rules below. */
const TABLE: Record<JobKind, { name: string; role: 'lock' | 'main' | 'other' | 'cleanup' | 'unlock' }[]> = {
  backup: [
    { name: 'pre-backup-lock', role: 'lock' },
    { name: 'pre-backup-check', role: 'other' },
    { name: 'backup', role: 'main' },
    { name: 'upload', role: 'main' },
    { name: 'backup-cleanup', role: 'cleanup' },
    { name: 'post-backup-unlock', role: 'unlock' },
    // a transfer (verify_after_upload), after the unlock
    { name: 'verify-upload', role: 'main' },
  ],
  restore: [
    { name: 'pre-restore-lock', role: 'lock' },
    { name: 'download', role: 'main' },
    { name: 'restore', role: 'main' },
    { name: 'restore-cleanup', role: 'cleanup' },
    { name: 'post-restore-unlock', role: 'unlock' },
  ],
  // no lock, no script: nothing is ever owed
  verify: [{ name: 'verify', role: 'main' }],
}

function record(attempted: string[], extra: Partial<RecoveryRecord> = {}): RecoveryRecord {
  return { state: attempted.at(-1) ?? 'starting', attempted, uploading: undefined, script: undefined, request: request('x'), ...extra }
}

const script = (stage: string) => ({ pid: 999_999, startTime: '1', stage })

/**
 * The oracle: cleanup is owed once a main stage (or a transfer) was entered, unlock once lock was;
 * either only while it has not run, that is while it was never entered or is the stage the agent
 * died in. The recorded script comes first ('orphan', unless it died with a reboot), then the
 * partial upload ('abandon').
 */
function oracle(kind: JobKind, entered: string[], hasScript: boolean, uploading: boolean, sameBoot: boolean): string[] {
  const roles = new Set(TABLE[kind].filter((s) => entered.includes(s.name)).map((s) => s.role))
  const notRun = (name: string) => !entered.includes(name) || entered.at(-1) === name
  const cleanup = TABLE[kind].find((s) => s.role === 'cleanup')?.name
  const unlock = TABLE[kind].find((s) => s.role === 'unlock')?.name
  return [
    ...(hasScript && sameBoot ? ['orphan'] : []),
    ...(uploading ? ['abandon'] : []),
    ...(cleanup && roles.has('main') && notRun(cleanup) ? [cleanup] : []),
    ...(unlock && roles.has('lock') && notRun(unlock) ? [unlock] : []),
  ]
}

describe('stepsStillDue', () => {
  it('owes nothing for a job interrupted before its lock stage', () => {
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', record([]), true), [])
    assert.deepEqual(stepsStillDue('restore', 'RUNNING', record([]), true), [])
  })

  it('owes unlock once lock was entered, cleanup once the main stage was', () => {
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', record(['pre-backup-lock'], { script: script('pre-backup-lock') }), true), [
      'orphan',
      'post-backup-unlock',
    ])
    assert.deepEqual(
      stepsStillDue('backup', 'RUNNING', record(['pre-backup-lock', 'pre-backup-check', 'backup', 'upload'], { uploading: 'f.sql' }), true),
      ['abandon', 'backup-cleanup', 'post-backup-unlock'],
    )
    assert.deepEqual(stepsStillDue('restore', 'RUNNING', record(['pre-restore-lock', 'download']), true), [
      'restore-cleanup',
      'post-restore-unlock',
    ])
  })

  it('owes the stage the agent died in until its script is known to have exited', () => {
    // entered, script not yet recorded: it runs again
    assert.deepEqual(
      stepsStillDue(
        'backup',
        'RUNNING',
        record(['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']),
        true,
      ),
      ['post-backup-unlock'],
    )
    // recorded: 'orphan' waits for it first (and then counts it as run)
    const unlocking = record(['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'], {
      script: script('post-backup-unlock'),
    })
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', unlocking, true), ['orphan', 'post-backup-unlock'])
    // recorded in another boot: the reboot killed it, it runs again and its pid is never signalled
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', unlocking, false), ['post-backup-unlock'])
  })

  it('keeps what an interrupted recovery stored, with the script it was running', () => {
    const failed = record(['pre-backup-lock', 'backup', 'backup-cleanup'], {
      pending: ['backup-cleanup', 'post-backup-unlock'],
      script: script('backup-cleanup'),
    })
    assert.deepEqual(stepsStillDue('backup', 'FAILED', failed, true), ['orphan', 'backup-cleanup', 'post-backup-unlock'])
    assert.deepEqual(stepsStillDue('backup', 'FAILED', failed, false), ['backup-cleanup', 'post-backup-unlock'])
    assert.deepEqual(stepsStillDue('backup', 'FAILED', record(['pre-backup-lock'], { pending: [] }), true), [])
    assert.deepEqual(stepsStillDue('backup', 'SUCCEEDED', record(['pre-backup-lock']), true), [])
  })

  it('matches the rules for every order of entered stages the runner can leave (generated)', () => {
    const kinds = fc.constantFrom<JobKind>('backup', 'restore', 'verify')
    fc.assert(
      fc.property(
        kinds,
        fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (kind, picks, hasScript, uploading, sameBoot) => {
          // the runner enters stages in table order and may skip some
          const entered = TABLE[kind].filter((_, i) => picks[i]).map((s) => s.name)
          const rec = record(entered, {
            script: hasScript ? script(entered.at(-1) ?? 'x') : undefined,
            uploading: uploading ? 'f' : undefined,
          })
          assert.deepEqual(stepsStillDue(kind, 'RUNNING', rec, sameBoot), oracle(kind, entered, hasScript, uploading, sameBoot))
        },
      ),
      { numRuns: 500 },
    )
  })
})

describe('stepsStillDue at each stage an agent can be killed in', () => {
  // Killed during the named stage of a job where nothing had failed before: what the stored
  // record (no script recorded, no upload unless said) still owes.
  const KILLED_DURING: Record<JobKind, [string, string[]][]> = {
    backup: [
      ['pre-backup-lock', ['post-backup-unlock']],
      ['pre-backup-check', ['post-backup-unlock']],
      ['backup', ['backup-cleanup', 'post-backup-unlock']],
      ['upload', ['backup-cleanup', 'post-backup-unlock']],
      ['backup-cleanup', ['backup-cleanup', 'post-backup-unlock']],
      ['post-backup-unlock', ['post-backup-unlock']],
      ['verify-upload', []],
    ],
    restore: [
      ['pre-restore-lock', ['post-restore-unlock']],
      ['download', ['restore-cleanup', 'post-restore-unlock']],
      ['restore', ['restore-cleanup', 'post-restore-unlock']],
      ['restore-cleanup', ['restore-cleanup', 'post-restore-unlock']],
      ['post-restore-unlock', ['post-restore-unlock']],
    ],
    verify: [['verify', []]],
  }

  for (const kind of ['backup', 'restore', 'verify'] as const) {
    for (const [position, [stage, owed]] of KILLED_DURING[kind].entries()) {
      const entered = TABLE[kind].slice(0, position + 1).map((s) => s.name)
      it(`${kind}: killed during ${stage} -> ${owed.join(', ')}; a recorded script first, a partial upload next`, () => {
        assert.deepEqual(stepsStillDue(kind, 'RUNNING', record(entered), true), owed)
        assert.deepEqual(stepsStillDue(kind, 'RUNNING', record(entered, { script: script(stage) }), true), ['orphan', ...owed])
        assert.deepEqual(stepsStillDue(kind, 'RUNNING', record(entered, { script: script(stage), uploading: 'f.sql' }), true), [
          'orphan',
          'abandon',
          ...owed,
        ])
        // the same record once recovery ran: it keeps what it stored, and nothing when that was nothing
        assert.deepEqual(stepsStillDue(kind, 'FAILED', record(entered, { pending: owed }), true), owed)
        assert.deepEqual(stepsStillDue(kind, 'FAILED', record(entered, { pending: [] }), true), [])
      })
    }
  }

  it('after an earlier failure: killed in the cleanup or unlock that followed it', () => {
    assert.deepEqual(
      stepsStillDue('backup', 'RUNNING', record(['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup']), true),
      ['backup-cleanup', 'post-backup-unlock'],
    )
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', record(['pre-backup-lock', 'post-backup-unlock']), true), ['post-backup-unlock'])
    assert.deepEqual(stepsStillDue('restore', 'RUNNING', record(['pre-restore-lock', 'download', 'restore-cleanup']), true), [
      'restore-cleanup',
      'post-restore-unlock',
    ])
  })

  /** The stages runStages runs when the named stages fail (fake bodies, the real table and rules). */
  async function runnerRuns(kind: JobKind, failing: readonly string[]): Promise<string[]> {
    const ran: string[] = []
    const job = newJob(
      { ...request('x', kind), destination: { type: 'LOCAL', skipStorage: false, filenamePrefix: '', filename: 'f.sql' } },
      logFields(kind),
    )
    const table = STAGES[kind].map((s) => ({
      ...s,
      async run() {
        ran.push(s.name)
        if (failing.includes(s.name)) throw new JobError(`${s.name} failed`)
      },
    }))
    await runStages(table, { job } as unknown as StageContext, new AbortController().signal, { entered: () => {}, left: () => {} })
    return ran
  }

  it('owes what the runner would still have run had the stage it died in failed, that stage included if it was cleanup or unlock', async () => {
    for (const kind of ['backup', 'restore'] as const) {
      const finishing = new Set(STAGES[kind].filter((s) => s.kind === 'cleanup' || s.kind === 'unlock').map((s) => s.name))
      // every run the runner can make: no failure, or a failure at any stage
      for (const failed of [undefined, ...STAGES[kind].map((s) => s.name)]) {
        const run = await runnerRuns(kind, failed ? [failed] : [])
        for (const [k, died] of run.entries()) {
          const afterKill = await runnerRuns(kind, failed ? [failed, died] : [died])
          assert.deepEqual(afterKill.slice(0, k + 1), run.slice(0, k + 1))
          const expected = [...(finishing.has(died) ? [died] : []), ...afterKill.slice(k + 1)]
          assert.deepEqual(
            stepsStillDue(kind, 'RUNNING', record(run.slice(0, k + 1)), true),
            expected,
            `${kind}, ${failed ?? 'nothing'} failed, killed during ${died}`,
          )
        }
      }
    }
  })
})

function request(id: string, kind: JobKind = 'backup', parameters: Record<string, string> = {}): JobRequest {
  return {
    kind,
    id,
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL', skipStorage: true, filenamePrefix: '', filename: '' },
    database: { host: 'h', username: 'u', password: 'db-password-1', database: 'd', parameters },
  }
}

/** A row as a killed agent left it: RUNNING, in `state`, with the stages it entered. */
function runningRow(
  id: string,
  attempted: string[],
  extra: Partial<RecoveryRecord> = {},
  parameters: Record<string, string> = {},
): StoredJob {
  const job = newJob(request(id, 'backup', parameters), logFields('backup'), new Date(1_000_000))
  job.attempted = attempted
  job.state = attempted.at(-1) ?? 'starting'
  const rec = { ...recoveryRecord(job), ...extra }
  return {
    kind: 'backup',
    id,
    status: 'RUNNING',
    body: JSON.stringify(pollingBody(job)),
    record: JSON.stringify(rec),
    startedAt: 1_000_000,
    endedAt: null,
  }
}

/** A real store whose writes fail while `failing` is set. */
class FailingStore extends JobStore {
  failing = false
  override save(job: StoredJob): void {
    if (this.failing) throw Object.assign(new Error('database or disk is full'), { errcode: 13 })
    super.save(job)
  }
}

function setUp(scripts: Record<string, string>) {
  const root = mkdtempSync(join(tmpdir(), 'recovery-'))
  const scriptsPath = join(root, 'scripts')
  mkdirSync(scriptsPath)
  const trace = join(root, 'trace')
  for (const [stage, body] of Object.entries(scripts)) {
    const file = join(scriptsPath, `${stage}.sh`)
    writeFileSync(file, `#!/bin/bash\necho "${stage}" >> '${trace}'\n${body}\n`)
    chmodSync(file, 0o755)
  }
  const { config } = loadConfig({
    client_username: 'u',
    client_password: 'p',
    directory_backup: join(root, 'b'),
    directory_restore: join(root, 'r'),
    scripts_path: scriptsPath,
    hook_timeout_seconds: '1',
  })
  mkdirSync(config.directoryBackup, { recursive: true })
  const store = new FailingStore(join(root, 'state'))
  const registry = new JobRegistry(2, store)
  const deps = { config, registry, log: createLogger('silent'), agentEnv: {} }
  const ran = () =>
    readFileSync(trace, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
  const recordOf = (id: string) => JSON.parse(store.all().find((r) => r.id === id)?.record ?? '{}') as RecoveryRecord
  return { store, registry, deps, ran, recordOf }
}

describe('markInterrupted and finishRecovery', () => {
  it('turns an interrupted job FAILED, runs what it owes and stores an empty list only after they ran; a missing script counts as run', async () => {
    const { store, registry, deps, ran, recordOf } = setUp({ 'backup-cleanup': 'exit 3' })
    store.save(runningRow('j1', ['pre-backup-lock', 'pre-backup-check', 'backup']))
    const owing = registry.load()
    const items = markInterrupted(owing, registry)
    assert.deepEqual(
      items.map((i) => i.pending),
      [['backup-cleanup', 'post-backup-unlock']],
    )
    assert.deepEqual(recordOf('j1').pending, ['backup-cleanup', 'post-backup-unlock'], 'stored before anything runs')
    assert.equal(registry.delete('backup', 'j1'), 'owed')

    await finishRecovery(items, deps)
    assert.deepEqual(ran(), ['backup-cleanup'])
    assert.deepEqual(recordOf('j1').pending, [])
    const body = JSON.parse(registry.get('backup', 'j1')?.body ?? '{}')
    assert.equal(body.status, 'FAILED')
    assert.match(body.error_message, /^interrupted by agent restart during backup; during recovery: .*no post-backup-unlock script/)
    assert.equal(registry.delete('backup', 'j1'), 'deleted', 'nothing owed any more')
  })

  it('a backup killed during its storage clean-up (every stage passed) reads SUCCEEDED and owes nothing', async () => {
    const { store, registry, deps, ran, recordOf } = setUp({ 'post-backup-unlock': '', 'backup-cleanup': '' })
    const all = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
    store.save(runningRow('j9', all, { stagesDone: true }))
    // the same record without the marker owes the unlock again: the marker is what tells them apart
    assert.deepEqual(stepsStillDue('backup', 'RUNNING', record(all), true), ['post-backup-unlock'])
    const items = markInterrupted(registry.load(), registry)
    assert.deepEqual(items, [])
    await finishRecovery(items, deps)
    assert.throws(() => ran(), 'no script ran')
    assert.deepEqual(recordOf('j9').pending, [])
    const body = JSON.parse(registry.get('backup', 'j9')?.body ?? '{}')
    assert.equal(body.status, 'SUCCEEDED')
    assert.equal(body.state, 'finished')
    assert.equal(body.error_message, undefined, 'no error: the backup is complete')
    assert.match(body.message, /success/i)
    assert.match(body.storage_gc_log, /^storage clean-up interrupted by agent restart/)
    assert.equal(registry.delete('backup', 'j9'), 'deleted', 'nothing owed')
  })

  it('resumes a recovery a crash interrupted: a finished job with steps still pending', async () => {
    const { store, registry, deps, ran, recordOf } = setUp({ 'post-backup-unlock': '' })
    const row = runningRow('j2', ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup'])
    const rec = JSON.parse(row.record) as RecoveryRecord
    store.save({ ...row, status: 'FAILED', endedAt: 1_000_500, record: JSON.stringify({ ...rec, pending: ['post-backup-unlock'] }) })
    const items = markInterrupted(registry.load(), registry)
    assert.deepEqual(
      items.map((i) => i.pending),
      [['post-backup-unlock']],
    )
    await finishRecovery(items, deps)
    assert.deepEqual(ran(), ['post-backup-unlock'])
    assert.deepEqual(recordOf('j2').pending, [])
  })

  it('forgets a script recorded in another boot (never signals its pid) and runs its stage again', async () => {
    const { store, registry, deps, ran, recordOf } = setUp({ 'post-backup-unlock': '' })
    const stages = ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock']
    // A live group whose pid and start time match the record: recovery would wait for it, then
    // stop it, and count the unlock as run, if it believed the record.
    const bystander = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' })
    try {
      const pid = bystander.pid as number
      const recorded = { pid, startTime: processStartTime(pid) ?? '', stage: 'post-backup-unlock' }
      store.save(runningRow('j3', stages, { script: recorded, boot: `not-${bootId()}` }))
      const items = markInterrupted(registry.load(), registry)
      assert.deepEqual(
        items.map((i) => i.pending),
        [['post-backup-unlock']],
      )
      assert.equal(recordOf('j3').script, undefined)
      await finishRecovery(items, deps)
      assert.deepEqual(ran(), ['post-backup-unlock'])
      assert.equal(processStartTime(pid), recorded.startTime, 'never signalled')
    } finally {
      bystander.kill('SIGKILL')
    }
  })

  it('a store that refuses writes during recovery loses no step: they all run and are written later', async () => {
    const { store, registry, deps, ran, recordOf } = setUp({ 'backup-cleanup': '', 'post-backup-unlock': '' })
    store.save(runningRow('j4', ['pre-backup-lock', 'pre-backup-check', 'backup']))
    const items = markInterrupted(registry.load(), registry)
    store.failing = true
    await finishRecovery(items, deps)
    assert.deepEqual(ran(), ['backup-cleanup', 'post-backup-unlock'])
    assert.deepEqual(recordOf('j4').pending, ['backup-cleanup', 'post-backup-unlock'], 'the store missed the progress')
    assert.equal(registry.storeProblem, 'the job store could not be written (disk full?)')
    store.failing = false
    assert.equal(registry.writeOut(), 0)
    assert.deepEqual(recordOf('j4').pending, [])
    assert.equal(JSON.parse(store.all()[0]?.body ?? '{}').post_backup_unlock_log, '')
  })

  it('keeps the parameters (the unlock script needs them) while steps are owed, blanks secrets once done', async () => {
    const { store, registry, deps, recordOf } = setUp({ 'backup-cleanup': '', 'post-backup-unlock': '' })
    store.save(runningRow('j5', ['pre-backup-lock', 'backup'], {}, { api_token: 'tok-secret-1', port: '5432' }))
    const items = markInterrupted(registry.load(), registry)
    assert.equal(readRecord(store.all().find((r) => r.id === 'j5')?.record ?? '').request.database.parameters.api_token, 'tok-secret-1')
    assert.ok(!store.all().some((r) => r.record.includes('tok-secret-1')), 'kept sealed, never as text')
    await finishRecovery(items, deps)
    assert.deepEqual(recordOf('j5').request.database.parameters, { api_token: '', port: '5432' })
    assert.equal(recordOf('j5').sealed, undefined, 'nothing kept once nothing is owed')
  })
})
