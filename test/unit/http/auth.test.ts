import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { timingSafeEqual } from 'node:crypto'
import { basicAuthChecker, sameBytes } from '../../../src/http/auth.ts'

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
    for (const header of [
      undefined,
      '',
      'Basic',
      basic('admin:wrong'),
      basic('other:p:ss word'),
      basic('admin'),
      basic('admin:p:ss wor'),
      'Bearer abc',
      'Basic !!!',
      `${basic('admin:p:ss word')}AAAA`,
      `${basic('admin:p:ss word')}=`,
      `${basic('admin:p:ss word')}A`,
      basic('admin:p:ss word').replace('Basic ', 'Basic ='),
    ]) {
      assert.equal(check(header), false, String(header))
    }
  })

  it('agrees with a base64 oracle on the right header changed in every way, and on any string', () => {
    // Credentials of several lengths around the padded buffer's 256-byte steps, non-ASCII included.
    for (const [user, password] of [
      ['manager', 'pw:sécret'],
      ['u', ''],
      ['admin', 'x'.repeat(180)],
      ['a', 'é'.repeat(200)],
    ] as const) {
      const check = basicAuthChecker(user, password)
      const right = basic(`${user}:${password}`)
      /** Written apart from the code: WHATWG's forgiving base64 (atob) and the bytes as UTF-8. */
      const oracle = (header: string) => {
        const token = /^\s*basic\s+(\S+)\s*$/i.exec(header)?.[1]
        if (token === undefined) return false
        let binary: string
        try {
          binary = atob(token)
        } catch {
          return false
        }
        return Buffer.from(binary, 'latin1').toString('utf8') === `${user}:${password}`
      }
      const edit = fc.oneof(
        fc.tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 3 })).map(
          ([at, text]) =>
            (h: string) =>
              h.slice(0, at % (h.length + 1)) + text + h.slice(at % (h.length + 1)),
        ),
        fc.tuple(fc.nat(), fc.nat({ max: 3 })).map(
          ([at, n]) =>
            (h: string) =>
              h.slice(0, at % (h.length + 1)) + h.slice((at % (h.length + 1)) + n),
        ),
        fc.constantFrom('\0', 'Ł', '\u0141', ' ', '=', '==', 'A', '\t', '\u00a0').map((c) => (h: string) => h + c),
        fc.constant((h: string) => h.toLowerCase()),
        fc.constant((h: string) => h.replace(/=+$/, '')),
        fc.constant((h: string) => `  ${h.replace(' ', '   ')}  `),
      )
      fc.assert(
        fc.property(fc.array(edit, { maxLength: 3 }), (edits) => {
          const header = edits.reduce((h, f) => f(h), right)
          assert.equal(check(header), oracle(header), JSON.stringify(header))
        }),
        { numRuns: 1500 },
      )
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (header) => check(header) === oracle(header)),
        { numRuns: 500 },
      )
      assert.equal(check(right), true)
    }
  })
})

describe('sameBytes (the constant-time compare of every poll)', () => {
  it('agrees with crypto.timingSafeEqual: equal buffers, one byte changed anywhere, any pair', () => {
    const base = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 31) % 256))
    assert.equal(sameBytes(base, Buffer.from(base)), true)
    for (let i = 0; i < base.length; i++) {
      const other = Buffer.from(base)
      other[i] = (other[i] as number) ^ (1 << (i % 8))
      assert.equal(sameBytes(base, other), false, `byte ${i}`)
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        const right = Buffer.alloc(a.length)
        right.set(b.subarray(0, a.length))
        assert.equal(sameBytes(a, right), timingSafeEqual(a, right))
      }),
    )
  })
  it('refuses buffers of different sizes instead of comparing a part', () => {
    assert.throws(() => sameBytes(Buffer.alloc(256), Buffer.alloc(512)), RangeError)
  })
})
