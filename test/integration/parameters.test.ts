// Parameter names by allowlist and the bounds at the trigger (SPEC §3, §5), against a real agent:
// a refused request is a 400 that registers nothing and runs no script; an accepted lower-case or
// listed parameter reaches the script's environment, while TAR_OPTIONS, OPENSSL_CONF and the
// proxies never do (from a request or from the agent's own environment).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody, skipStorageDestination } from '../helpers/bodies.ts'

/** Every stage's environment, one NUL-separated file per stage, in the folder of parameter `probe`. */
const envProbe = (stage: string) => `if [ -n "\${probe:-}" ]; then env -0 > "$probe/${stage}.env"; fi`

function environmentOf(raw: string): Map<string, string> {
  return new Map(
    raw
      .split('\0')
      .filter((l) => l !== '')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

describe('request parameters reach scripts only by allowlist', () => {
  let agent: Agent
  let probe: string
  before(async () => {
    agent = await startAgent({
      env: {
        script_parameter_names: 'PGPORT,retryCount,TAR_OPTIONS,HTTP_PROXY',
        // In the agent's own environment too: never passed on (not in script_env_passthrough).
        TAR_OPTIONS: '--checkpoint-action=exec=touch /tmp/osb-tar-options',
        OPENSSL_CONF: '/nonexistent/openssl.cnf',
      },
      scripts: {
        'pre-backup-lock': envProbe('pre-backup-lock'),
        backup: `${envProbe('backup')}\necho dump > "$5.sql"`,
        restore: envProbe('restore'),
      },
    })
    probe = join(agent.root, 'probe')
    await mkdir(probe)
  })
  after(() => agent.stop())

  const refused: [name: string, why: RegExp][] = [
    ['TAR_OPTIONS', /reserved/],
    ['OPENSSL_CONF', /reserved/],
    ['HTTP_PROXY', /reserved/],
    ['http_proxy', /reserved/],
    ['Https_Proxy', /reserved/],
    ['npm_config_script_shell', /reserved/],
    ['BASH_ENV', /reserved/],
    ['bash_env', /reserved/],
    ['LD_PRELOAD', /reserved/],
    ['PYTHONPATH', /reserved/],
    ['PGHOST', /not an allowed parameter name/],
    ['retry-count', /not an allowed parameter name/],
    ['Retries', /not an allowed parameter name/],
    ['rétries', /not an allowed parameter name/],
  ]
  for (const [name, why] of refused) {
    it(`refuses ${JSON.stringify(name)} with a 400 that names it and script_parameter_names; no job, no script`, async () => {
      const id = managerId()
      const res = await agent.request(
        'POST',
        '/backup',
        managerBackupBody(id, skipStorageDestination(), { parameters: [{ job: id }, { [name]: '$(touch /tmp/osb-param-marker)' }] }),
      )
      assert.equal(res.status, 400)
      const message: string = res.json().error_message
      assert.ok(message.includes(name), message)
      assert.match(message, /script_parameter_names/)
      assert.match(message, why)
      assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
      assert.deepEqual(await agent.stagesRun(id), [])
    })
  }

  it('gives the script lower-case and listed parameters, and never TAR_OPTIONS or OPENSSL_CONF', async () => {
    const id = managerId()
    const parameters = [{ probe }, { job: id }, { port: 5433 }, { PGPORT: '5434' }, { retryCount: 2 }, { _x: 'y' }]
    const res = await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { parameters }))
    assert.equal(res.status, 201, res.text)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    for (const stage of ['pre-backup-lock', 'backup']) {
      const env = environmentOf(await readFile(join(probe, `${stage}.env`), 'utf8'))
      assert.equal(env.get('port'), '5433', stage)
      assert.equal(env.get('PGPORT'), '5434', stage)
      assert.equal(env.get('retryCount'), '2', stage)
      assert.equal(env.get('_x'), 'y', stage)
      for (const name of ['TAR_OPTIONS', 'OPENSSL_CONF', 'HTTP_PROXY', 'http_proxy'])
        assert.equal(env.has(name), false, `${stage} got ${name}`)
    }
  })

  it('refuses a 300 KiB parameter value (once accepted, then every stage failed with E2BIG), naming it', async () => {
    const id = managerId()
    const res = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, skipStorageDestination(), { parameters: [{ job: id }, { big: 'x'.repeat(300 * 1024) }] }),
    )
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /backup\.parameters\.big is 307200 bytes/)
    assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
    assert.deepEqual(await agent.stagesRun(id), [])
  })

  it('refuses more than 512 KiB in all, and a password over 32 KiB', async () => {
    const id = managerId()
    const parameters = Array.from({ length: 17 }, (_, i) => ({ [`p${i}`]: 'x'.repeat(32 * 1024) }))
    const all = await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { parameters }))
    assert.equal(all.status, 400)
    assert.match(all.json().error_message, /512 KiB/)
    const password = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, skipStorageDestination(), { password: 'é'.repeat(16 * 1024 + 1) }),
    )
    assert.equal(password.status, 400)
    assert.match(password.json().error_message, /backup\.password is 32770 bytes/)
    assert.equal((await agent.request('GET', `/backup/${id}`)).status, 404)
  })

  it('refuses restore filenames that are too long or decode to "", "." or ".."', async () => {
    for (const filename of ['a'.repeat(201), '.osb', '..osb', '...osb']) {
      const id = managerId()
      const res = await agent.request('PUT', '/restore', managerRestoreBody(id, skipStorageDestination({ skipStorage: false, filename })))
      assert.equal(res.status, 400, filename)
      assert.match(res.json().error_message, /destination\.filename/)
      assert.equal((await agent.request('GET', `/restore/${id}`)).status, 404)
    }
  })

  it('requires the destination fields with skipStorage', async () => {
    const id = managerId()
    const res = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, { type: 'S3', skipStorage: true, authKey: 'k', authSecret: 'storage-secret-Z9' }),
    )
    assert.equal(res.status, 400)
    assert.match(res.json().error_message, /destination\.bucket is required/)
    const swift = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, {
        type: 'SWIFT',
        skipStorage: true,
        authUrl: 'http://127.0.0.1:9/auth/v1.0',
        username: 'u',
        password: 'storage-secret-Z9',
      }),
    )
    assert.equal(swift.status, 400)
    assert.match(swift.json().error_message, /destination\.container_name is required/)
  })
})
