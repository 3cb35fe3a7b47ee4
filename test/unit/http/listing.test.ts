import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { encodeCursor, parseListingQuery } from '../../../src/http/listing.ts'

describe('parseListingQuery', () => {
  it('defaults, a status in any case, and a cursor it gave out', () => {
    assert.deepEqual(parseListingQuery({}), { ok: true, value: { status: undefined, limit: 100, after: undefined } })
    const cursor = encodeCursor({ startedAt: 1700000000000, id: 'job-1' })
    assert.deepEqual(parseListingQuery({ status: 'failed', limit: '5', cursor }), {
      ok: true,
      value: { status: 'FAILED', limit: 5, after: { startedAt: 1700000000000, id: 'job-1' } },
    })
  })

  it('names every bad parameter', () => {
    const result = parseListingQuery({ status: 'DONE', limit: '-1', cursor: 'not-a-cursor' })
    assert.equal(result.ok, false)
    if (!result.ok) assert.equal(result.errors.length, 3)
    assert.equal(parseListingQuery({ limit: ['1', '2'] }).ok, false)
  })
})
