// Lifecycle scripts (SPEC §5): order, arguments, environment, failure handling, output capture.
// The scripts are real bash scripts that record what ran in a trace file.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { BACKUP_STAGES, RESTORE_STAGES, startAgent, type Agent } from '../helpers/agent.ts'
import { DB_PASSWORD, ENCRYPTION_KEY, managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

const STORAGE_SECRET = 'storage-secret-Q8'
const PARAM_SECRET = 'param-token-W4'
const skip = {
  type: 'S3',
  skipStorage: true,
  bucket: 'bkt',
  authKey: 'ak',
  authSecret: STORAGE_SECRET,
  endpoint: '127.0.0.1:9',
  region: 'eu-west-1',
  useSSL: false,
  filenamePrefix: 'p/',
}

/** Scripts that fail when their parameter fail names their stage. */
const failOn = (stage: string) => `if [ "$fail" = "${stage}" ]; then echo "${stage} failing" >&2; exit 3; fi`

describe('lifecycle scripts', () => {
  let agent: Agent
  before(async () => {
    const scripts: Record<string, string> = {}
    for (const stage of [...BACKUP_STAGES, ...RESTORE_STAGES]) scripts[stage] = failOn(stage)
    scripts['pre-backup-lock'] += '\necho "lock-for $job" >&2'
    scripts.backup += '\nif [ "$nofile" != 1 ]; then echo "dump" > "$5.sql"; fi'
    agent = await startAgent({ env: { LANG: 'C.UTF-8', client_secret_extra: 'never-to-scripts' }, scripts })
  })
  // stop() also audits the agent's output for every secret these tests sent
  after(() => agent.stop())
  const jobTrace = (id: string) => agent.stagesRun(id)

  it('runs the backup stages in order with the exact positional arguments', async () => {
    const id = managerId()
    const res = await agent.request('POST', '/backup', managerBackupBody(id, skip, { database: 'orders', parameters: [{ job: id }] }))
    assert.equal(res.status, 201)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.deepEqual(await jobTrace(id), BACKUP_STAGES)
    const trace = await agent.trace()
    const line = (stage: string) => trace.filter((l) => l.startsWith(`${stage} `)).at(-1)
    assert.equal(line('pre-backup-lock'), 'pre-backup-lock orders')
    assert.equal(line('pre-backup-check'), 'pre-backup-check orders')
    const stamp = /^\d{4}_\d\d_\d\d_\d\d_\d\d_10\.0\.0\.12_orders$/
    const backupArgs = line('backup')?.split(' ') ?? []
    assert.deepEqual(backupArgs.slice(0, 5), ['backup', '10.0.0.12', 'backup-user', DB_PASSWORD, 'orders'])
    assert.match(backupArgs[5] ?? '', stamp)
    assert.deepEqual(backupArgs.slice(6), [id, 'false', ENCRYPTION_KEY])
    assert.equal(line('backup-cleanup'), `backup-cleanup orders ${id}`)
    assert.equal(line('post-backup-unlock'), 'post-backup-unlock orders')
    assert.equal(done.filename, `${backupArgs[5]}.sql`)
    assert.equal(done.filesize.size, 5)
    assert.match(done.pre_backup_lock_errorlog, new RegExp(`lock-for ${id}`))
  })

  it('runs the restore stages in order with the exact positional arguments', async () => {
    const id = managerId()
    const body = managerRestoreBody(id, { ...skip, filename: 'dump.sql' }, { parameters: [{ job: id }] })
    body.encryption_key = null
    body.compression = true
    assert.equal((await agent.request('PUT', '/restore', body)).status, 201)
    const done = await agent.waitFor('restore', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.deepEqual(await jobTrace(id), RESTORE_STAGES)
    const trace = await agent.trace()
    const line = (stage: string) => trace.filter((l) => l.startsWith(`${stage} `) || l === stage).at(-1)
    assert.equal(line('pre-restore-lock'), `pre-restore-lock ${id}`)
    // a null encryption key is an empty last argument
    assert.equal(line('restore'), `restore 10.0.0.12 backup-user ${DB_PASSWORD} orders dump.sql ${id} true `)
    assert.equal(line('restore-cleanup'), `restore-cleanup ${id}`)
    assert.equal(line('post-restore-unlock'), 'post-restore-unlock ')
  })

  for (const failing of BACKUP_STAGES) {
    it(`a failing ${failing} fails the backup, skips the remaining main stages, and still cleans up and unlocks`, async () => {
      const id = managerId()
      await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { job: id, fail: failing } }))
      const done = await agent.waitFor('backup', id)
      assert.equal(done.status, 'FAILED')
      assert.equal(done.message, 'backup failed')
      assert.equal(done.state, 'finished')
      assert.match(done.error_message, new RegExp(`${failing} script failed with exit code 3`))
      const ran = await jobTrace(id)
      const failedAt = BACKUP_STAGES.indexOf(failing)
      const mainStarted = failedAt >= BACKUP_STAGES.indexOf('backup')
      const expected = [...BACKUP_STAGES.slice(0, failedAt + 1)]
      if (mainStarted && failing !== 'backup-cleanup' && failing !== 'post-backup-unlock') expected.push('backup-cleanup')
      if (failing !== 'post-backup-unlock') expected.push('post-backup-unlock')
      assert.deepEqual(ran, expected)
      assert.match(done[`${failing.replaceAll('-', '_')}_errorlog`], new RegExp(`${failing} failing`))
    })
  }

  for (const failing of RESTORE_STAGES) {
    it(`a failing ${failing} fails the restore and still cleans up and unlocks`, async () => {
      const id = managerId()
      await agent.request('PUT', '/restore', managerRestoreBody(id, skip, { parameters: { job: id, fail: failing } }))
      const done = await agent.waitFor('restore', id)
      assert.equal(done.status, 'FAILED')
      assert.equal(done.message, 'restore failed')
      const failedAt = RESTORE_STAGES.indexOf(failing)
      const expected = [...RESTORE_STAGES.slice(0, failedAt + 1)]
      if (failing === 'restore') expected.push('restore-cleanup')
      if (failing !== 'post-restore-unlock') expected.push('post-restore-unlock')
      assert.deepEqual(await jobTrace(id), [...new Set(expected)])
    })
  }

  it('fails a backup whose script leaves no file, and still cleans up and unlocks', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(
        id,
        { ...skip, skipStorage: false, endpoint: 'http://127.0.0.1:9', useSSL: null },
        { parameters: { job: id, nofile: 1 } },
      ),
    )
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /the backup script left no file/)
    assert.deepEqual(await jobTrace(id), BACKUP_STAGES)
  })

  it('with skipStorage and no file: filename is the generated name and filesize 0', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, skip, { database: 'x', parameters: { job: id, nofile: 1 } }))
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.match(done.filename, /^\d{4}_\d\d_\d\d_\d\d_\d\d_10\.0\.0\.12_x$/)
    assert.deepEqual(done.filesize, { size: 0, unit: 'byte' })
  })

  it('a database name with ../ cannot move the generated name out of the job directory', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, skip, { host: '../../h', database: '../../../etc/evil', parameters: { job: id } }),
    )
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.match(done.filename, /^\d{4}_\d\d_\d\d_\d\d_\d\d_\.\._\.\._h_\.\._\.\._\.\._etc_evil\.sql$/)
    assert.ok(existsSync(join(agent.backupDir, id, done.filename)))
    assert.deepEqual(
      readdirSync(agent.backupDir).sort(),
      readdirSync(agent.backupDir)
        .filter((n) => !n.includes('evil'))
        .sort(),
    )
  })

  it('fails the stage clearly when a script is missing', async () => {
    const lonely = await startAgent({ noDefaultScripts: true })
    try {
      const id = managerId()
      await lonely.request('POST', '/backup', managerBackupBody(id, skip))
      const done = await lonely.waitFor('backup', id)
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, /no pre-backup-lock script: neither pre-backup-lock nor pre-backup-lock\.sh exists in/)
    } finally {
      await lonely.stop()
    }
  })
})

describe('script environment and output', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({
      env: { LANG: 'C.UTF-8', TZ: 'UTC', AGENT_ONLY_VAR: 'agent-private', script_log_max_bytes: '2048' },
      scripts: {
        backup: 'env | sort; echo "dump" > "$5.sql"',
        // set -x prints every command with its expanded arguments, secrets included
        'pre-backup-check': 'set -x; echo "checking $1"; true "$secret_token"',
        restore: 'head -c 10000 /dev/zero | tr "\\0" "a"; echo; echo END',
      },
    })
  })
  // stop() also audits the agent's output for every secret these tests sent
  after(() => agent.stop())

  it('gives scripts the passthrough variables and parameters, and nothing else of the agent', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(
        id,
        { ...skip, skipStorage: false, endpoint: '127.0.0.1:9' },
        {
          parameters: [{ retries: 2 }, { ratio: 0.5 }, { big: 1e21 }, { flag: true }, { label: 'a b' }],
        },
      ),
    )
    const done = await agent.waitFor('backup', id)
    const env = Object.fromEntries(
      (done.backup_log as string)
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    assert.equal(env.PATH, process.env.PATH)
    assert.equal(env.LANG, 'C.UTF-8')
    assert.equal(env.TZ, 'UTC')
    assert.equal(env.retries, '2')
    assert.equal(env.ratio, '0.5')
    assert.equal(env.big, '1000000000000000000000')
    assert.equal(env.flag, 'true')
    assert.equal(env.label, 'a b')
    for (const name of Object.keys(env))
      assert.ok(!/^client_|^directory_|^AGENT_ONLY|^scripts_path/.test(name), `${name} leaked to the script`)
    assert.ok(!(done.backup_log as string).includes(agent.password))
    assert.equal(env.S3_AUTHSECRET, undefined, 'storage variables only with skipStorage')
  })

  it('exports each destination field under its own name with skipStorage', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, skip))
    const done = await agent.waitFor('backup', id)
    const log = done.backup_log as string
    for (const line of [
      'S3_BUCKET=bkt',
      'S3_ENDPOINT=127.0.0.1:9',
      'S3_REGION=eu-west-1',
      'S3_AUTHKEY=ak',
      'S3_SKIPSSL=true',
      'S3_FILENAMEPREFIX=p/',
    ]) {
      assert.ok(log.split('\n').includes(line), `${line} in\n${log}`)
    }
    // the value is there for the script, masked in the polling body
    assert.ok(log.includes('S3_AUTHSECRET=******'))
  })

  it('exports the Swift fields with skipStorage', async () => {
    const id = managerId()
    await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, {
        type: 'SWIFT',
        skipStorage: true,
        authUrl: 'http://127.0.0.1:9/v3',
        domain: 'dom',
        project_name: 'proj',
        container_name: 'cont',
        username: 'swuser',
        password: STORAGE_SECRET,
      }),
    )
    const done = await agent.waitFor('backup', id)
    const log = (done.backup_log as string).split('\n')
    for (const line of [
      'SWIFT_AUTHURL=http://127.0.0.1:9/v3',
      'SWIFT_DOMAIN=dom',
      'SWIFT_CONTAINERNAME=cont',
      'SWIFT_PROJECTNAME=proj',
      'SWIFT_USERNAME=swuser',
      'SWIFT_PASSWORD=******',
    ]) {
      assert.ok(log.includes(line), line)
    }
  })

  it('masks the request secrets in captured output (a script run with set -x)', async () => {
    const id = managerId()
    await agent.request('POST', '/backup', managerBackupBody(id, skip, { parameters: { secret_token: PARAM_SECRET } }))
    const done = await agent.waitFor('backup', id)
    const raw = JSON.stringify(done)
    for (const secret of [DB_PASSWORD, ENCRYPTION_KEY, STORAGE_SECRET, PARAM_SECRET])
      assert.ok(!raw.includes(secret), `${secret} in the polling body`)
    assert.match(done.pre_backup_check_errorlog, /\+ true '?\*\*\*\*\*\*'?/)
  })

  it('keeps only the last script_log_max_bytes of a stream, with a note', async () => {
    const id = managerId()
    await agent.request('PUT', '/restore', managerRestoreBody(id, skip))
    const done = await agent.waitFor('restore', id)
    const log = done.restore_log as string
    assert.match(log, /^\[output cut: earlier bytes not kept, showing the last 2048 bytes\]\n/)
    assert.ok(log.endsWith('END\n'))
    assert.ok(Buffer.byteLength(log) < 2048 + 100)
  })
})
