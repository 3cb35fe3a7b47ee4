// The wire contract of SPEC §2 and §3, status code by status code, against a real agent process.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startAgent, runAgentToExit, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

/** skipStorage bodies need no server: these tests are about the HTTP contract. */
const skipDestination = {
  type: 'S3',
  skipStorage: true,
  bucket: 'b',
  authKey: 'k',
  authSecret: 'storage-secret-A1',
  endpoint: '127.0.0.1:1',
  filenamePrefix: 'backups/',
}

describe('HTTP API', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({
      env: { max_job_number: '2', script_parameter_names: 'MixedCase' },
      scripts: { backup: 'sleep "${sleep:-0}"; echo ok > "$5.sql"' },
    })
  })
  // stop() also audits the agent's output for every secret these tests sent
  after(() => agent.stop())

  it('GET /status answers 200 {"message":"Client is running"}', async () => {
    const res = await agent.request('GET', '/status')
    assert.equal(res.status, 200)
    assert.deepEqual(res.json(), { message: 'Client is running' })
  })

  it('answers 401 {"message":"Unauthorised."} without or with wrong credentials, and logs neither', async () => {
    for (const auth of [null, `Basic ${Buffer.from(`manager:wrong-guess-77`).toString('base64')}`, 'Bearer x']) {
      const res = await agent.request('GET', '/status', undefined, { auth })
      assert.equal(res.status, 401)
      assert.deepEqual(res.json(), { message: 'Unauthorised.' })
    }
    const res = await agent.request('POST', '/backup', managerBackupBody(managerId(), skipDestination), { auth: null })
    assert.equal(res.status, 401)
    await agent.waitForOutput(/login failed/)
    assert.ok(!agent.output().includes('wrong-guess-77'))
  })

  it('accepts the same credentials spelled differently (scheme case, spaces)', async () => {
    const token = Buffer.from(`${agent.username}:${agent.password}`).toString('base64')
    const res = await agent.request('GET', '/status', undefined, { auth: `basic   ${token}` })
    assert.equal(res.status, 200)
  })

  it('starts a backup: 201 with an empty body, and the job is RUNNING at once', async () => {
    const id = managerId()
    const res = await agent.request('POST', '/backup', managerBackupBody(id, skipDestination, { parameters: [{ sleep: '0.5' }] }))
    assert.equal(res.status, 201)
    assert.equal(res.text, '')
    const poll = await agent.request('GET', `/backup/${id}`)
    assert.equal(poll.status, 200)
    assert.match(poll.headers.get('content-type') ?? '', /^application\/json/)
    const body = poll.json()
    assert.equal(body.status, 'RUNNING')
    assert.equal(body.message, 'backup is running')
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    assert.equal(done.message, 'backup successfully carried out')
    assert.equal(done.state, 'finished')
    assert.match(done.start_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/)
    assert.match(done.end_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/)
    assert.ok(Number.isInteger(done.execution_time_ms) && done.execution_time_ms >= 500, `execution_time_ms ${done.execution_time_ms}`)
    const start = Date.parse(done.start_time)
    assert.ok(Math.abs(start - Date.now()) < 60_000, 'start_time is real UTC')
    assert.deepEqual(done.filesize.unit, 'byte')
    assert.equal(done.filenamePrefix, 'backups/')
  })

  it('parses the body as JSON whatever the Content-Type', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', '']) {
      const id = managerId()
      const raw = JSON.stringify(managerBackupBody(id, skipDestination))
      const res = await agent.request('POST', '/backup', undefined, { raw, headers: type ? { 'content-type': type } : {} })
      assert.equal(res.status, 201, `Content-Type ${JSON.stringify(type)}: ${res.text}`)
      await agent.waitFor('backup', id)
    }
  })

  it('answers 409 with the existing job for a known id, before validating the rest', async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skipDestination))).status, 201)
    await agent.waitFor('backup', id)
    const res = await agent.request('POST', '/backup', { id, destination: 'nonsense' })
    assert.equal(res.status, 409)
    assert.equal(res.json().status, 'SUCCEEDED')
  })

  it('answers 409 for a known restore id too; backup and restore ids are separate namespaces', async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skipDestination))).status, 201)
    await agent.waitFor('backup', id)
    const restore = managerRestoreBody(id, skipDestination)
    assert.equal((await agent.request('PUT', '/restore', restore)).status, 201)
    await agent.waitFor('restore', id)
    const again = await agent.request('PUT', '/restore', restore)
    assert.equal(again.status, 409)
    assert.equal(again.json().message, 'restore successfully carried out')
  })

  it('answers 400 with a polling-shaped body naming every bad field, and registers nothing', async () => {
    const id = managerId()
    const body = managerBackupBody(
      id,
      { type: 'S3', bucket: '', authKey: 'k', endpoint: 'ftp://x' },
      { host: '', parameters: [{ BASH_ENV: '$(touch /tmp/pwned)' }] },
    )
    body.compression = 'yes'
    const res = await agent.request('POST', '/backup', body)
    assert.equal(res.status, 400)
    const json = res.json()
    assert.equal(json.status, 'FAILED')
    assert.equal(json.state, 'Body Deserialization')
    for (const field of ['compression', 'destination.bucket', 'destination.authSecret', 'backup.host', 'backup.parameters.BASH_ENV']) {
      assert.ok(json.error_message.includes(field), `error_message names ${field}: ${json.error_message}`)
    }
    assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
  })

  it('rejects bodies that are not JSON objects with 400 JSON', async () => {
    for (const raw of ['{not json', '[]', '"text"', 'null', '']) {
      const res = await agent.request('POST', '/backup', undefined, { raw })
      assert.equal(res.status, 400, raw)
      assert.equal(res.json().status, 'FAILED')
    }
  })

  it('rejects an unsupported destination type', async () => {
    const res = await agent.request('POST', '/backup', managerBackupBody(managerId(), { ...skipDestination, type: 'FTP' }))
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /destination\.type must be one of S3, SWIFT, LOCAL/)
  })

  it('matches documented keys case-insensitively, but never inside parameters', async () => {
    const id = managerId()
    const res = await agent.request('POST', '/backup', {
      ID: id,
      Compression: false,
      DESTINATION: { TYPE: 'S3', SkipStorage: true, Bucket: 'b', AUTHKEY: 'k', authsecret: 's' },
      Backup: { HOST: 'h', UserName: 'u', PassWord: 'p', DataBase: 'd', Parameters: { MixedCase: 'kept' } },
    })
    assert.equal(res.status, 201, res.text)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED')
    assert.equal(done.skip_storage, true)
    const env = await agent.request('GET', `/backup/${id}`)
    assert.equal(env.status, 200)
  })

  it('answers 400 when two spellings of one key carry different values', async () => {
    const body = managerBackupBody(managerId(), skipDestination) as Record<string, unknown>
    body.Compression = true
    const res = await agent.request('POST', '/backup', body)
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /compression: the keys "compression" and "Compression" differ only by case/)
  })

  it('rejects traversal ids and creates nothing outside its directories', async () => {
    for (const id of ['..', '.', '../../etc', 'a/b', 'x'.repeat(129), 'id with space', '']) {
      const res = await agent.request('POST', '/backup', managerBackupBody(id, skipDestination))
      assert.equal(res.status, 400, `id ${JSON.stringify(id)}`)
      assert.match(res.json().error_message, /id/)
    }
    for (const path of ['/backup/..', '/backup/%2e%2e', '/backup/a%2Fb', '/restore/..%2F..%2Fetc']) {
      const res = await agent.request('GET', path)
      assert.ok(res.status === 400 || res.status === 404, `${path} answered ${res.status}`)
      assert.notEqual(res.status, 200)
    }
    assert.deepEqual(
      readdirSync(agent.root).filter((n) => !['backup', 'restore', 'scripts', 'state', 'trace.log', 'trace.log.jobs'].includes(n)),
      [],
    )
  })

  it('rejects restore filenames that are not plain file names', async () => {
    for (const filename of ['../x', 'a/b', '..', '.']) {
      const res = await agent.request(
        'PUT',
        '/restore',
        managerRestoreBody(managerId(), { ...skipDestination, skipStorage: false, filename }),
      )
      assert.equal(res.status, 400, filename)
      assert.match(res.json().error_message, /destination\.filename/)
    }
    const res = await agent.request('PUT', '/restore', managerRestoreBody(managerId(), { ...skipDestination, skipStorage: false }))
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /destination\.filename is required/)
  })

  it('rejects reserved and malformed parameter names', async () => {
    const reserved = [
      'BASH_ENV',
      'PATH',
      'LD_PRELOAD',
      'LD_LIBRARY_PATH',
      'IFS',
      'ENV',
      'PS4',
      'SHELLOPTS',
      'BASH_FUNC_x%%',
      'AGENT_X',
      'S3_AUTHSECRET',
      'DB_PASSWORD',
      'HOME',
      'GLOBIGNORE',
      'CDPATH',
      'BASHOPTS',
    ]
    for (const name of reserved) {
      const res = await agent.request('POST', '/backup', managerBackupBody(managerId(), skipDestination, { parameters: [{ [name]: 'x' }] }))
      assert.equal(res.status, 400, name)
      assert.match(res.json().error_message, /backup\.parameters/, name)
    }
    for (const parameters of [[{ '1abc': 'x' }], [{ 'a-b': 'x' }], [{ ok: { nested: 1 } }], [{ ok: null }], ['x'], 'str', 5]) {
      const res = await agent.request('POST', '/backup', managerBackupBody(managerId(), skipDestination, { parameters }))
      assert.equal(res.status, 400, JSON.stringify(parameters))
    }
  })

  it('rejects an explicit SSL flag that contradicts the endpoint scheme', async () => {
    const res = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(managerId(), { ...skipDestination, skipStorage: false, endpoint: 'https://127.0.0.1:1', useSSL: false }),
    )
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /useSSL contradicts the https:\/\/ scheme/)
    const skip = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(managerId(), {
        ...skipDestination,
        skipStorage: false,
        endpoint: 'http://127.0.0.1:1',
        useSSL: null,
        skipSSL: false,
      }),
    )
    assert.equal(skip.status, 400)
    assert.match(skip.json().error_message, /skipSSL contradicts/)
  })

  it('answers 413 JSON for bodies over 1 MiB', async () => {
    const body = managerBackupBody(managerId(), skipDestination)
    body.padding = 'x'.repeat(1024 * 1024 + 10)
    const res = await agent.request('POST', '/backup', body)
    assert.equal(res.status, 413)
    assert.match(res.json().message, /larger than/)
  })

  it('answers JSON 404 for unknown routes and JSON 405 for unknown methods', async () => {
    const notFound = await agent.request('GET', '/nope')
    assert.equal(notFound.status, 404)
    assert.ok(notFound.json().message)
    for (const [method, path] of [
      ['PUT', '/backup'],
      ['POST', '/restore'],
      ['PATCH', '/backup'],
      ['POST', '/status'],
      ['POST', '/backup/abc'],
    ]) {
      const res = await agent.request(method as string, path as string, {})
      assert.equal(res.status, 405, `${method} ${path}`)
      assert.ok(res.json().message)
    }
  })

  it('GET answers 400 for an invalid id and 404 with an empty body for an unknown one', async () => {
    const bad = await agent.request('GET', `/backup/${'x'.repeat(200)}`)
    assert.equal(bad.status, 400)
    assert.ok(bad.json().message)
    const unknown = await agent.request('GET', '/backup/unknown-id')
    assert.equal(unknown.status, 404)
    assert.equal(unknown.text, '')
    assert.equal((await agent.request('GET', '/restore/unknown-id')).status, 404)
  })

  it('DELETE answers 200 for a finished job, 410 for an unknown one, 409 for a running one, 400 for a bad body', async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skipDestination, { parameters: { sleep: 1 } }))).status, 201)
    const running = await agent.request('DELETE', '/backup', { id })
    assert.equal(running.status, 409)
    assert.equal(running.json().status, 'RUNNING')
    await agent.waitFor('backup', id)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 200)
    assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
    assert.equal((await agent.request('DELETE', '/backup', { id })).status, 410)
    assert.equal((await agent.request('DELETE', '/restore', { id: 'never-seen' })).status, 410)
    for (const raw of ['{}', '{"id": 5}', '{"id": "../x"}', 'nope']) {
      const res = await agent.request('DELETE', '/backup', undefined, { raw })
      assert.equal(res.status, 400, raw)
      assert.ok(res.json().message)
    }
  })

  it('answers 429 beyond max_job_number running jobs (backups and restores together) and frees the slot', async () => {
    const a = managerId()
    const b = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(a, skipDestination, { parameters: { sleep: 1 } }))).status, 201)
    assert.equal((await agent.request('PUT', '/restore', managerRestoreBody(b, skipDestination, { parameters: { sleep: 1 } }))).status, 201)
    const c = managerId()
    const full = await agent.request('POST', '/backup', managerBackupBody(c, skipDestination))
    assert.equal(full.status, 429)
    const json = full.json()
    assert.ok(json.message && json.state && json.error_message)
    assert.equal((await agent.request('GET', `/backup/${c}`)).status, 404, 'a refused job is not registered')
    // A rejected request takes no slot either.
    assert.equal((await agent.request('POST', '/backup', { id: managerId() })).status, 400)
    await agent.waitFor('backup', a)
    await agent.waitFor('restore', b)
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(c, skipDestination))).status, 201)
    await agent.waitFor('backup', c)
  })
})

describe('start-up', () => {
  it('refuses to start without credentials or directories, with one clear line', async () => {
    const { code, output } = await runAgentToExit({ directory_backup: '/tmp/x', directory_restore: '/tmp/y' })
    assert.notEqual(code, 0)
    assert.match(output, /client_username, client_password/)
    const noDirs = await runAgentToExit({ client_username: 'u', client_password: 'p' })
    assert.notEqual(noDirs.code, 0)
    assert.match(noDirs.output, /directory_backup, directory_restore/)
  })

  it('falls back to the default with a warning for a value it cannot parse', async () => {
    const agent = await startAgent({ env: { max_job_number: 'lots' } })
    try {
      assert.match(agent.output(), /max_job_number: cannot use the value given; using the default 10/)
      assert.equal((await agent.request('GET', '/status')).status, 200)
    } finally {
      await agent.stop()
    }
  })

  it('creates no job directory for a rejected request', async () => {
    const agent = await startAgent()
    try {
      await agent.request('POST', '/backup', { id: 'rejected-one' })
      assert.equal(existsSync(join(agent.backupDir, 'rejected-one')), false)
    } finally {
      await agent.stop()
    }
  })
})
