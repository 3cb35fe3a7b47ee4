import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidJson, MAX_BODY_DEPTH, parseJsonBody } from '../../../src/http/body.ts'

describe('parseJsonBody', () => {
  it('parses JSON and answers InvalidJson for anything else', () => {
    assert.deepEqual(parseJsonBody('{"a":[1,{"b":null}]}'), { a: [1, { b: null }] })
    assert.ok(parseJsonBody('{nope') instanceof InvalidJson)
    assert.ok(parseJsonBody('') instanceof InvalidJson)
  })

  it('refuses nesting deeper than MAX_BODY_DEPTH, however deep, without overflowing the stack', () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)
    assert.ok(!(parseJsonBody(nested(MAX_BODY_DEPTH)) instanceof InvalidJson))
    assert.ok(parseJsonBody(nested(MAX_BODY_DEPTH + 1)) instanceof InvalidJson)
    const deep = parseJsonBody(nested(500_000))
    assert.ok(deep instanceof InvalidJson)
    assert.match(deep.reason, /nested deeper than 64 levels/)
    const objects = '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000)
    assert.ok(parseJsonBody(objects) instanceof InvalidJson)
  })
})
