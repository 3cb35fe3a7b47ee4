import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidJson, MAX_BODY_DEPTH, parseJsonBody } from '../../../src/http/body.ts'

describe('parseJsonBody', () => {
  it('parses JSON and answers InvalidJson for anything else', () => {
    assert.deepEqual(parseJsonBody('{"a":[1,{"b":null}]}'), { a: [1, { b: null }] })
    assert.ok(parseJsonBody('{nope') instanceof InvalidJson)
    assert.ok(parseJsonBody('') instanceof InvalidJson)
  })

  it('decodes bytes as UTF-8 and refuses invalid UTF-8 and a byte order mark', () => {
    assert.deepEqual(parseJsonBody(Buffer.from('{"name":"ünï"}')), { name: 'ünï' })
    for (const bytes of [
      [0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d],
      [0x22, 0xed, 0xa0, 0x80, 0x22],
      [0x22, 0xc0, 0x80, 0x22],
    ]) {
      const parsed = parseJsonBody(Buffer.from(bytes))
      assert.ok(parsed instanceof InvalidJson)
      assert.match(parsed.reason, /not valid UTF-8/)
    }
    assert.ok(parseJsonBody(Buffer.from('\ufeff{}')) instanceof InvalidJson)
  })

  it('refuses nesting deeper than MAX_BODY_DEPTH, however deep, without overflowing the stack', () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)
    assert.ok(!(parseJsonBody(nested(MAX_BODY_DEPTH)) instanceof InvalidJson))
    assert.ok(parseJsonBody(nested(MAX_BODY_DEPTH + 1)) instanceof InvalidJson)
    const deep = parseJsonBody(nested(500_000))
    assert.ok(deep instanceof InvalidJson)
    assert.match(deep.reason, /nested deeper than 64 levels/)
    const objects = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`
    assert.ok(parseJsonBody(objects) instanceof InvalidJson)
  })

  it('never quotes the body in its reason (a password beside a typo would come back in the 400)', () => {
    const shapes = [
      (x: string) => `{"id":"j","backup":{"password":"${x}","port":tru}}`,
      (x: string) => `{"password":"${x}",}`,
      (x: string) => `{"password":"${x}"}}`,
      (x: string) => `{"password":"${x}" "x":1}`,
      (x: string) => `{"password":${x}}`,
      (x: string) => x,
      (x: string) => `["${x}",]`,
      (x: string) => `{"password":"${x}","n":-}`,
      (x: string) => `{"password":"${x}\\q"}`,
      (x: string) => `{"${x}"}`,
    ]
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9]{9,40}$/), fc.constantFrom(...shapes), (secret, shape) => {
        const parsed = parseJsonBody(shape(secret))
        assert.ok(parsed instanceof InvalidJson, shape(secret))
        // no 6 characters of the secret in a row: the reason is V8's words and positions only
        for (let i = 0; i + 6 <= secret.length; i++)
          assert.ok(!parsed.reason.includes(secret.slice(i, i + 6)), `${parsed.reason} quotes ${secret}`)
      }),
      { numRuns: 500 },
    )
  })
})
