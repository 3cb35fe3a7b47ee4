// Secrets in what scripts print, against a real agent: a backup script under `set -x` shows the
// database password the ways bash, Python and jq print it; the polling body's logs and the
// agent's own output hold none of them. The renderings checked are the tools' own.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, skipStorageDestination } from '../helpers/bodies.ts'

const PASSWORD = `it's-a "quoted" Pa$$word\twith é and \\ and 100%`
const LONG_PASSWORD = `Lg-${'x7#Q'.repeat(60)}-end'of-it`

const SHOW = `
set -x
: "$3"
printf '%q\\n' "$3"
echo "\${3@Q}"
python3 -c 'import json, sys, urllib.parse; print(json.dumps(sys.argv[1])); print(json.dumps(sys.argv[1], ensure_ascii=False)); print(urllib.parse.quote_plus(sys.argv[1]))' "$3"
jq -cn --arg p "$3" '{password: $p}'
set +x
if [ "$repeat" = 1 ]; then for i in $(seq 3000); do printf '%s\\n' "$3"; done; fi
echo "done" >&2
exit 1
`

/** How the tools print the password, asked of the tools. */
function renderings(secret: string): string[] {
  const bash = spawnSync('bash', ['-c', `printf '%q\\0' "$1"; (BASH_XTRACEFD=1; set -x; : "$1")`, 'render', secret], {
    env: { LC_ALL: 'C.UTF-8', PATH: process.env.PATH ?? '' },
  })
  const [q = '', trace = ''] = bash.stdout.toString().split('\0')
  const python = spawnSync('python3', [
    '-c',
    'import json, sys, urllib.parse; print("\\0".join([json.dumps(sys.argv[1]), urllib.parse.quote_plus(sys.argv[1])]), end="")',
    secret,
  ])
  const [json = '', plus = ''] = python.stdout.toString().split('\0')
  const forms = [secret, q, trace.replace(/^\+ : /, '').trimEnd(), json.slice(1, -1), plus]
  for (const form of forms) assert.ok(form.length >= 8, JSON.stringify(forms))
  return forms
}

describe('masking in job logs', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({ env: { LANG: 'C.UTF-8', script_log_max_bytes: '4096' }, scripts: { backup: SHOW } })
  })
  // stop() audits the agent's own output for the passwords
  after(() => agent.stop())

  it("masks the password as set -x, printf %q, ${x@Q}, JSON and URL encoders print it (the review's it's-…)", async () => {
    const id = managerId()
    const res = await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { password: PASSWORD }))
    assert.equal(res.status, 201, res.text)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    const logs = `${done.backup_log}\n${done.backup_errorlog}\n${done.error_message}`
    assert.match(done.backup_errorlog, /\+ : '\*{6}'/) // xtrace ran and was masked
    assert.match(done.backup_errorlog, /done/)
    for (const form of renderings(PASSWORD)) assert.ok(!logs.includes(form), `${JSON.stringify(form)} in\n${logs}`)
    agent.assertNoSecrets()
  })

  it('leaves no end of a long password printed thousands of times at the start of the cut log', async () => {
    const id = managerId()
    const res = await agent.request(
      'POST',
      '/backup',
      managerBackupBody(id, skipStorageDestination(), { password: LONG_PASSWORD, parameters: [{ repeat: '1' }] }),
    )
    assert.equal(res.status, 201, res.text)
    const done = await agent.waitFor('backup', id)
    const log = done.backup_log as string
    assert.match(log, /^\[output cut: earlier bytes not kept, showing the last \d+ bytes\]\n\n?(\*{6}\n)+$/)
    for (const form of renderings(LONG_PASSWORD)) {
      for (let i = 0; i + 4 <= form.length; i++)
        assert.ok(!log.includes(form.slice(i, i + 4)) || form.slice(i, i + 4) === '****', form.slice(i, i + 4))
    }
  })
})

// A PEM private key as encryption_key (a restore's key pair): tools print its lines one at a time.
const PEM_PIECES = `
k="\${ENCRYPTION_KEY:-$8}"
printf '%s\\n' "$k" | sed -n 2,3p
printf '%s\\n' "$k" | grep -v -- ----- | tr -d '\\n'; echo
echo "done" >&2
exit 1
`

describe('masking the pieces of a PEM key', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({ env: { LANG: 'C.UTF-8' }, scripts: { backup: PEM_PIECES } })
  })
  after(() => agent.stop())

  it('masks each base64 line of the key and its body on one line', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
    const lines = pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'))
    const id = managerId()
    const body = managerBackupBody(id, skipStorageDestination())
    body.encryption_key = pem
    const res = await agent.request('POST', '/backup', body)
    assert.equal(res.status, 201, res.text)
    const done = await agent.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.backup_errorlog, /done/)
    const log = `${done.backup_log}\n${done.backup_errorlog}\n${done.error_message}`
    assert.match(log, /\*{6}/)
    for (const piece of [...lines.filter((l) => l.length >= 16), lines.join('')]) assert.ok(!log.includes(piece), `${piece} in\n${log}`)
    agent.assertNoSecrets(lines.filter((l) => l.length >= 16))
  })
})

describe('masking the secret-named variables the agent passes through', () => {
  const PG = 'pg-agent-Secret-77x'
  let agent: Agent
  before(async () => {
    agent = await startAgent({
      env: { script_env_passthrough: 'PATH,HOME,PGPASSWORD,RETRY_LIMIT', PGPASSWORD: PG, RETRY_LIMIT: 'retry-limit-plain-9' },
      scripts: { backup: 'set -x; : "$PGPASSWORD" "$RETRY_LIMIT"; echo "$PGPASSWORD"; exit 1' },
    })
    agent.addSecrets([PG])
  })
  after(() => agent.stop())

  it("masks PGPASSWORD from the agent's environment in the script output; a plain name is shown", async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination()))).status, 201)
    const done = await agent.waitFor('backup', id)
    const log = `${done.backup_log}\n${done.backup_errorlog}\n${done.error_message}`
    assert.match(log, /retry-limit-plain-9/) // the variable reached the script, and only the secret is masked
    assert.ok(!log.includes(PG), log)
    assert.match(done.backup_log, /\*{6}/)
  })
})
