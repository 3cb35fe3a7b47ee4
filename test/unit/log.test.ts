import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../src/log.ts'

describe('logger redaction', () => {
  it('redacts secret fields at the top and one level down, whatever logs them', () => {
    const lines: string[] = []
    const log = createLogger('info', { write: (line: string) => void lines.push(line) })
    const secrets = ['pw-top-1', 'pw-nested-2', 'key-3', 'env-pw-4', 'env-key-5', 'Basic c2VjcmV0', 'swift-6', 's3-7']
    log.info({ password: secrets[0], request: { password: secrets[1], encryption_key: secrets[2] } }, 'a')
    log.warn({ env: { DB_PASSWORD: secrets[3], ENCRYPTION_KEY: secrets[4], SWIFT_PASSWORD: secrets[6], S3_AUTHSECRET: secrets[7] } }, 'b')
    log.error({ req: { headers: { authorization: secrets[5] } } }, 'c')
    const out = lines.join('')
    assert.equal(lines.length, 3)
    for (const secret of secrets) assert.ok(!out.includes(secret as string), `${secret} in ${out}`)
    assert.equal(out.match(/\[redacted\]/g)?.length, 8)
  })
})
