// The runner walking the real stage tables (order, kinds, runIf, applies) with fake bodies: no
// scripts, no storage. Which stages run after a failure at each position, what a cancel at each
// position leaves to run, which stages get the job's cancel signal; then a whole job through
// runJob and the registry: what a poll sees at each step is what the store holds.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../src/errors.ts'
import { newJob, type Job } from '../../../src/jobs/job.ts'
import { JobRegistry } from '../../../src/jobs/registry.ts'
import type { JobKind, JobRequest } from '../../../src/jobs/request.ts'
import { runJob, runStages } from '../../../src/jobs/runner.ts'
import type { Stage, StageContext } from '../../../src/jobs/stage-context.ts'
import { logFields, STAGES } from '../../../src/jobs/stages.ts'
import { JobStore } from '../../../src/jobs/store.ts'
import { createLogger } from '../../../src/log.ts'
import { configUnder } from '../../helpers/processes.ts'

function request(kind: JobKind, id = 'job-1', skipStorage = false): JobRequest {
  return {
    kind,
    id,
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL', skipStorage, filenamePrefix: '', filename: kind === 'restore' ? 'dump.sql' : '' },
    database: { host: 'h', username: 'u', password: 'db-password-1', database: 'd', parameters: {} },
  }
}

/** What a fake body does when it runs: nothing, or throw, or whatever a test needs. */
type Behaviour = (stage: Stage, ctx: StageContext) => void

/** The kind's real table with every body replaced by `behave`. */
// A fake body starts no script, so it does not store its own start (recordsItsStart): the runner
// stores every stage on entry (a real script stage's own write: test/unit/jobs/script-stages.test.ts).
const fakeTable = (kind: JobKind, behave: Behaviour): Stage[] =>
  STAGES[kind].map((stage) => ({
    ...stage,
    recordsItsStart: undefined,
    async run(ctx: StageContext) {
      behave(stage, ctx)
    },
  }))

interface Walked {
  ran: string[]
  failure: JobError | undefined
  /** Per stage that ran: whether it was given the job's cancel signal. */
  gotCancel: Record<string, boolean>
}

async function walk(
  kind: JobKind,
  behave: Behaviour,
  options: { cancel?: AbortController; job?: Partial<Job>; ctx?: Partial<StageContext> } = {},
): Promise<Walked> {
  const job = Object.assign(newJob(request(kind), logFields(kind)), options.job)
  const cancel = options.cancel ?? new AbortController()
  const ctx = { job, signal: undefined, ...options.ctx } as unknown as StageContext
  const ran: string[] = []
  const gotCancel: Record<string, boolean> = {}
  const failure = await runStages(
    fakeTable(kind, (stage, c) => {
      ran.push(stage.name)
      gotCancel[stage.name] = c.signal === cancel.signal
      behave(stage, c)
    }),
    ctx,
    cancel.signal,
    { entered: () => {}, left: () => {} },
  )
  return { ran, failure, gotCancel }
}

const ALL: Record<JobKind, string[]> = {
  backup: ['pre-backup-lock', 'pre-backup-check', 'backup', 'upload', 'backup-cleanup', 'post-backup-unlock'],
  restore: ['pre-restore-lock', 'download', 'restore', 'restore-cleanup', 'post-restore-unlock'],
  verify: ['verify'],
}

/**
 * The stages that run when the named stage fails (SPEC §5): nothing more of the main line;
 * cleanup once a main or transfer stage was attempted; unlock once lock was.
 */
const AFTER_FAILURE: Record<JobKind, Record<string, string[]>> = {
  backup: {
    'pre-backup-lock': ['pre-backup-lock', 'post-backup-unlock'],
    'pre-backup-check': ['pre-backup-lock', 'pre-backup-check', 'post-backup-unlock'],
    backup: ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'],
    upload: ALL.backup,
    'backup-cleanup': ALL.backup,
    'post-backup-unlock': ALL.backup,
  },
  restore: {
    'pre-restore-lock': ['pre-restore-lock', 'post-restore-unlock'],
    download: ['pre-restore-lock', 'download', 'restore-cleanup', 'post-restore-unlock'],
    restore: ALL.restore,
    'restore-cleanup': ALL.restore,
    'post-restore-unlock': ALL.restore,
  },
  verify: { verify: ['verify'] },
}

const KINDS: JobKind[] = ['backup', 'restore']

describe('runStages: a failure at each position', () => {
  for (const kind of KINDS) {
    it(`${kind}: runs every stage in order when none fails`, async () => {
      const { ran, failure } = await walk(kind, () => {})
      assert.deepEqual(ran, ALL[kind])
      assert.equal(failure, undefined)
    })

    for (const [failing, expected] of Object.entries(AFTER_FAILURE[kind])) {
      it(`${kind}: ${failing} fails -> ${expected.join(', ')}`, async () => {
        const { ran, failure } = await walk(kind, (stage) => {
          if (stage.name === failing) throw new JobError(`${failing} exited with status 1`)
        })
        assert.deepEqual(ran, expected)
        assert.equal(failure?.message, `${failing} exited with status 1`)
      })
    }
  }

  it('keeps the first failure when cleanup and unlock fail after it', async () => {
    const { ran, failure } = await walk('backup', (stage) => {
      if (['backup', 'backup-cleanup', 'post-backup-unlock'].includes(stage.name)) throw new JobError(`${stage.name} broke`)
    })
    assert.deepEqual(ran, AFTER_FAILURE.backup.backup)
    assert.equal(failure?.message, 'backup broke')
  })

  it('names the stage in a failure that is not a JobError', async () => {
    const { failure } = await walk('restore', (stage) => {
      if (stage.name === 'download') throw new Error('connection reset')
    })
    assert.ok(failure instanceof JobError)
    assert.equal(failure.message, 'download failed: connection reset')
  })
})

describe('runStages: which stages apply', () => {
  it('leaves out the upload for skipStorage and for a streamed backup, the download for a streamed restore', async () => {
    const withoutUpload = ALL.backup.filter((s) => s !== 'upload')
    assert.deepEqual((await walk('backup', () => {}, { job: { request: request('backup', 'j', true) } })).ran, withoutUpload)
    // the backup stage decides: its stream carried the dump
    const streamed = await walk('backup', (stage, ctx) => {
      if (stage.name === 'backup') ctx.job.streamed = true
    })
    assert.deepEqual(streamed.ran, withoutUpload)
    const restore = await walk('restore', () => {}, { job: { streamRestore: true } })
    assert.deepEqual(
      restore.ran,
      ALL.restore.filter((s) => s !== 'download'),
    )
  })

  it('reads the upload back after the unlock only with verify_after_upload, and only when there was storage', async () => {
    const verifying = { ctx: { verifyAfterUpload: true } }
    assert.deepEqual((await walk('backup', () => {}, verifying)).ran, [...ALL.backup, 'verify-upload'])
    const skipStorage = { ...verifying, job: { request: request('backup', 'j', true) } }
    assert.deepEqual(
      (await walk('backup', () => {}, skipStorage)).ran,
      ALL.backup.filter((s) => s !== 'upload'),
    )
    // its failure is the job's: the backup does not succeed unread
    const failed = await walk(
      'backup',
      (stage) => {
        if (stage.name === 'verify-upload') throw new JobError('checksum mismatch')
      },
      verifying,
    )
    assert.deepEqual(failed.ran, [...ALL.backup, 'verify-upload'])
    assert.equal(failed.failure?.message, 'checksum mismatch')
    // after an earlier failure nothing is read back
    const earlier = await walk(
      'backup',
      (stage) => {
        if (stage.name === 'upload') throw new JobError('upload failed')
      },
      verifying,
    )
    assert.deepEqual(earlier.ran, ALL.backup)
  })

  it('a verify job: one stage that holds the cancel signal, and no lock, cleanup or unlock around it', async () => {
    const cancel = new AbortController()
    const walked = await walk(
      'verify',
      (_stage, ctx) => {
        cancel.abort('cancelled')
        if (ctx.signal?.aborted) throw new JobError(String(ctx.signal.reason))
      },
      { cancel },
    )
    assert.deepEqual(walked.ran, ['verify'])
    assert.deepEqual(walked.gotCancel, { verify: true })
    assert.equal(walked.failure?.message, 'cancelled')
  })

  it('runs cleanup after a failed backup with skipStorage (its upload never applied)', async () => {
    const { ran } = await walk(
      'backup',
      (stage) => {
        if (stage.name === 'backup') throw new JobError('backup failed')
      },
      { job: { request: request('backup', 'j', true) } },
    )
    assert.deepEqual(ran, AFTER_FAILURE.backup.backup)
  })
})

describe('runStages: a cancel at each position', () => {
  const REASON = 'cancelled by the manager'

  for (const kind of KINDS) {
    it(`${kind}: the main line gets the job's cancel signal, cleanup and unlock none`, async () => {
      const { gotCancel } = await walk(kind, () => {}, { ctx: { verifyAfterUpload: true } })
      const expected = Object.fromEntries(STAGES[kind].map((s) => [s.name, s.kind !== 'cleanup' && s.kind !== 'unlock']))
      assert.deepEqual(gotCancel, expected)
    })

    it(`${kind}: cancelled before the first stage, nothing runs (no lock, so no unlock)`, async () => {
      const cancel = new AbortController()
      cancel.abort(REASON)
      const { ran, failure } = await walk(kind, () => {}, { cancel })
      assert.deepEqual(ran, [])
      assert.equal(failure?.message, REASON)
    })

    const names = ALL[kind]
    for (const [position, during] of names.entries()) {
      const last = position === names.length - 1
      // A stage holding the signal stops like a script would (it fails with the reason); the
      // stages after it are what a failure there leaves to run.
      it(`${kind}: cancelled during ${during}, a stage that stops on it -> ${AFTER_FAILURE[kind][during]?.join(', ')}`, async () => {
        const cancel = new AbortController()
        const { ran, failure } = await walk(
          kind,
          (stage, ctx) => {
            if (stage.name === during) cancel.abort(REASON)
            if (ctx.signal?.aborted) throw new JobError(String(ctx.signal.reason))
          },
          { cancel },
        )
        assert.deepEqual(ran, AFTER_FAILURE[kind][during])
        // Cleanup and unlock never see it. One during cleanup still fails the job (it is found
        // before unlock); one during the last stage, unlock, finds no stage left to stop.
        assert.equal(failure?.message, last ? undefined : REASON)
      })

      // A stage that finished anyway (the cancel came as it ended): the next stage finds it.
      it(`${kind}: cancelled as ${during} ended -> the same stages run`, async () => {
        const cancel = new AbortController()
        const { ran, failure } = await walk(
          kind,
          (stage) => {
            if (stage.name === during) cancel.abort(REASON)
          },
          { cancel },
        )
        assert.deepEqual(ran, AFTER_FAILURE[kind][during])
        assert.equal(failure?.message, last ? undefined : REASON)
      })
    }
  }
})

describe('runJob through the registry', () => {
  function setUp() {
    const root = mkdtempSync(join(tmpdir(), 'runner-'))
    const config = configUnder(root)
    const store = new JobStore(join(root, 'state'))
    const registry = new JobRegistry(2, store)
    const deps = { config, registry, log: createLogger('silent'), agentEnv: {} }
    const stored = (kind: JobKind, id: string) => store.all().find((r) => r.kind === kind && r.id === id)?.body
    return { store, registry, deps, stored }
  }

  for (const kind of KINDS) {
    it(`${kind}: at every step a poll sees what the store holds, each stage published before its body runs`, async () => {
      const { registry, deps, stored } = setUp()
      const job = newJob(request(kind), logFields(kind))
      const entry = registry.start(job)
      assert.ok(typeof entry === 'object')
      const poll = () => registry.get(kind, job.id)?.body
      assert.equal(poll(), stored(kind, job.id), 'registered and stored before start() returns')
      assert.equal(JSON.parse(poll() ?? '{}').state, 'starting')

      /** What a poll saw inside each stage's body, and what one saw in the first callback after the stage. */
      const inside: { stage: string; state: string; status: string }[] = []
      const afterwards: Promise<void>[] = []
      const table = fakeTable(kind, (stage, ctx) => {
        const seen = poll()
        assert.equal(seen, stored(kind, job.id), `inside ${stage.name}: the poll's body is the stored one`)
        const body = JSON.parse(seen ?? '{}')
        inside.push({ stage: stage.name, state: body.state, status: body.status })
        // The stage's output, as a script's would be: set now, published with the next step.
        const field = stage.logField ? `${stage.logField}_log` : undefined
        if (field) ctx.job.logs[field] = `output of ${stage.name}`
        afterwards.push(
          new Promise((resolve, reject) =>
            setImmediate(() => {
              try {
                const next = poll()
                assert.equal(next, stored(kind, job.id), `after ${stage.name}: the poll's body is the stored one`)
                if (field)
                  assert.equal(JSON.parse(next ?? '{}')[field], `output of ${stage.name}`, `after ${stage.name}: its output is visible`)
                resolve()
              } catch (error) {
                reject(error as Error)
              }
            }),
          ),
        )
      })

      await runJob(job, entry.live.cancel.signal, deps, table)
      await Promise.all(afterwards)
      assert.deepEqual(
        inside,
        ALL[kind].map((stage) => ({ stage, state: stage, status: 'RUNNING' })),
      )
      const final = JSON.parse(poll() ?? '{}')
      assert.equal(poll(), stored(kind, job.id))
      assert.equal(final.status, 'SUCCEEDED')
      assert.equal(final.state, 'finished')
      assert.equal(registry.running, 0, 'the slot is given back')
      assert.equal(registry.get(kind, job.id)?.live, undefined)
    })
  }

  it('after each stage that moved data (it asked for transfer options), failed or not, memory is handed back once', async () => {
    for (const failIn of [undefined, 'upload']) {
      const { registry, deps } = setUp()
      const job = newJob(request('backup', `job-${failIn ?? 'ok'}`), logFields('backup'))
      const entry = registry.start(job)
      assert.ok(typeof entry === 'object')
      const released: string[] = []
      let current = ''
      // A streamed backup moves data in its script stage, a file backup in its upload.
      const table = fakeTable('backup', (stage, ctx) => {
        current = stage.name
        if (stage.name === 'backup' || stage.name === 'upload') ctx.transferOptions(null)
        if (stage.name === 'upload') ctx.transferOptions(1) // asked twice: still one release
        if (stage.name === failIn) throw new JobError('the upload failed')
      })
      await runJob(
        job,
        entry.live.cancel.signal,
        { ...deps, transferMemory: { during: () => () => {}, ended: () => released.push(current) } },
        table,
      )
      assert.deepEqual(released, ['backup', 'upload'], `failing in ${failIn ?? 'nothing'}`)
    }
  })

  it('registry.cancel reaches the running stage through the signal start() handed to the runner; the job ends FAILED', async () => {
    const { registry, deps, stored } = setUp()
    const job = newJob(request('backup'), logFields('backup'))
    const entry = registry.start(job)
    assert.ok(typeof entry === 'object')
    const ran: string[] = []
    const table = fakeTable('backup', (stage, ctx) => {
      ran.push(stage.name)
      if (stage.name === 'backup') assert.equal(registry.cancel('backup', job.id, 'cancelled by the test'), 'cancelled')
      if (ctx.signal?.aborted) throw new JobError(String(ctx.signal.reason))
    })
    await runJob(job, entry.live.cancel.signal, deps, table)
    assert.deepEqual(ran, AFTER_FAILURE.backup.backup)
    const final = JSON.parse(registry.get('backup', job.id)?.body ?? '{}')
    assert.equal(final.status, 'FAILED')
    assert.equal(final.error_message, 'cancelled by the test')
    assert.equal(registry.get('backup', job.id)?.body, stored('backup', job.id))
  })
})
