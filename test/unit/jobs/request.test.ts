import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { storedRequest } from '../../../src/jobs/recovery-record.ts'
import { requestSecrets, type JobRequest } from '../../../src/jobs/request.ts'

const SECRET_NAMED = [
  'db_pass',
  'pgpassword',
  'mysql_pwd',
  'passphrase',
  'api_key',
  'redis_auth',
  'credentials',
  'private_pem',
  'vault_token',
  'client_secret',
  'DB_PASS',
]
const PLAIN = ['port', 'retries', 'database_name', 'tag', 'sleep_secs']

function request(parameters: Record<string, string>): JobRequest {
  return {
    kind: 'backup',
    id: 'a'.repeat(24),
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL', skipStorage: false, filenamePrefix: '', filename: '' },
    database: { host: 'h', username: 'u', password: '', database: 'd', parameters },
  }
}

describe('secret-named parameters', () => {
  const parameters = Object.fromEntries([...SECRET_NAMED, ...PLAIN].map((name) => [name, `value-of-${name}`]))

  it('are masked: every name that says secret, pass, pwd, token, key, auth, cred or private, and no other', () => {
    assert.deepEqual(requestSecrets(request(parameters)).sort(), SECRET_NAMED.map((n) => `value-of-${n}`).sort())
  })

  it("are blanked in the stored request (recovery's copy is sealed); the others are kept", () => {
    const stored = storedRequest(request(parameters)).database.parameters
    for (const name of SECRET_NAMED) assert.equal(stored[name], '', name)
    for (const name of PLAIN) assert.equal(stored[name], `value-of-${name}`, name)
  })
})

describe('PEM keys among the secrets', () => {
  it('add each base64 line and the body on one line, for the key and for a key in a parameter', async () => {
    const { generateKeyPairSync } = await import('node:crypto')
    const pem = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString()
      .replace(/\n/g, '\r\n')
    const lines = pem.split('\r\n').filter((l) => l !== '' && !l.startsWith('-----'))
    const r = request({ tls_key: pem, port: '1' })
    r.encryptionKey = pem
    const secrets = requestSecrets(r)
    // a last line shorter than 16 characters is not a secret of its own
    for (const piece of [pem, ...lines.filter((l) => l.length >= 16), lines.join('')]) assert.ok(secrets.includes(piece), piece)
    // a passphrase that is not PEM stays one secret
    assert.deepEqual(requestSecrets({ ...request({}), encryptionKey: 'just-a-passphrase' }), ['just-a-passphrase'])
  })
})
