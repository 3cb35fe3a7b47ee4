// The secret audit of test/helpers/agent.ts: which values of a request count as secrets.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { secretsOfAuthorization, secretsOfBody, secretsOfRaw } from '../../helpers/agent.ts'
import { DB_PASSWORD, ENCRYPTION_KEY, managerBackupBody } from '../../helpers/bodies.ts'

describe('secretsOfBody', () => {
  it('finds passwords, authSecret, encryption_key and secret-named parameters at any depth', () => {
    const body = managerBackupBody(
      'id-1',
      { type: 'S3', authKey: 'AKIA-not-secret', authSecret: 'storage-secret-1' },
      {
        parameters: [
          { api_key: 'param-key-value-1' },
          { SECRET_TOKEN: 'param-token-value' },
          { retries: 'three-retries' },
          { PASSWORD_x: 12345678901 },
        ],
      },
    )
    const found = secretsOfBody(body).sort()
    assert.deepEqual(
      found,
      [DB_PASSWORD, ENCRYPTION_KEY, '12345678901', 'param-key-value-1', 'param-token-value', 'storage-secret-1'].sort(),
    )
  })

  it('matches field names case-insensitively and in Swift destinations', () => {
    const found = secretsOfBody({
      DESTINATION: { Password: 'swift-password-1', AuthSecret: 'auth-secret-1' },
      Encryption_Key: 'enc-key-value-1',
    })
    assert.deepEqual(found.sort(), ['auth-secret-1', 'enc-key-value-1', 'swift-password-1'])
  })

  it('leaves out "none", short values and non-secret fields', () => {
    assert.deepEqual(
      secretsOfBody({ encryption_key: 'none', password: 'p', authKey: 'long-access-key', database: 'long-database-name' }),
      [],
    )
    assert.deepEqual(secretsOfBody('text'), [])
    assert.deepEqual(secretsOfRaw('{not json'), [])
    assert.deepEqual(secretsOfRaw('{"password":"raw-password-1"}'), ['raw-password-1'])
  })

  it('takes the password of a Basic header, and the header', () => {
    const header = `Basic ${Buffer.from('manager:guess-number-7').toString('base64')}`
    assert.deepEqual(secretsOfAuthorization(header), [header, 'guess-number-7'])
  })
})
