import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { basicAuthChecker } from '../../../src/http/auth.ts'

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`

describe('basicAuthChecker', () => {
  const check = basicAuthChecker('admin', 'p:ss word')
  it('accepts the right credentials, in any scheme case', () => {
    assert.equal(check(basic('admin:p:ss word')), true)
    assert.equal(check(basic('admin:p:ss word').replace('Basic', 'BASIC')), true)
    assert.equal(check(basic('admin:p:ss wor').replace(/=+$/, '')), false)
    assert.equal(check(`Basic ${Buffer.from('admin:p:ss word!').toString('base64').replace(/=+$/, '')}`), false, 'unpadded, wrong')
    const unpadded = Buffer.from('u:pw').toString('base64').replace(/=+$/, '')
    assert.equal(basicAuthChecker('u', 'pw')(`Basic ${unpadded}`), true, 'unpadded base64 of the right credentials')
  })
  it('refuses wrong, partial and malformed credentials', () => {
    for (const header of [undefined, '', 'Basic', basic('admin:wrong'), basic('other:p:ss word'), basic('admin'), basic('admin:p:ss wor'), 'Bearer abc', 'Basic !!!', `${basic('admin:p:ss word')}AAAA`, `${basic('admin:p:ss word')}=`, `${basic('admin:p:ss word')}A`, basic('admin:p:ss word').replace('Basic ', 'Basic =')]) {
      assert.equal(check(header), false, String(header))
    }
  })
})
