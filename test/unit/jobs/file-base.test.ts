import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { generatedFileBase } from '../../../src/jobs/file-base.ts'

const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5))
const STAMP = '2026_01_02_03_04'

describe('generatedFileBase', () => {
  it('is YYYY_MM_DD_HH_MM_<host>_<database> with unsafe characters replaced', () => {
    assert.equal(generatedFileBase('10.0.0.1', 'shop', now), `${STAMP}_10.0.0.1_shop`)
    assert.equal(generatedFileBase('../h', 'a b/ü', now), `${STAMP}_.._h_a_b__`)
  })

  // 168 = 200 (the longest restore filename) less 32 bytes for the script's extension
  it('keeps a name of exactly 168 bytes and shortens a longer one to a prefix and a hash of the whole', () => {
    const fill = 168 - `${STAMP}__d`.length
    assert.equal(generatedFileBase('h'.repeat(fill), 'd', now).length, 168)
    assert.equal(generatedFileBase('h'.repeat(fill), 'd', now), `${STAMP}_${'h'.repeat(fill)}_d`)
    for (const [host, database] of [
      ['h'.repeat(fill + 1), 'd'],
      ['db.example.org', 'x'.repeat(5000)],
      ['ü'.repeat(300), 'd'],
    ] as const) {
      const full = `${STAMP}_${host.replace(/[^A-Za-z0-9._-]/g, '_')}_${database}`
      const expected = `${full.slice(0, 155)}_${createHash('sha256').update(full).digest('hex').slice(0, 12)}`
      const base = generatedFileBase(host, database, now)
      assert.equal(base, expected)
      assert.equal(Buffer.byteLength(base), 168)
      assert.equal(generatedFileBase(host, database, now), base, 'deterministic')
    }
  })

  it('gives different long names different bases even when their prefixes agree', () => {
    const host = 'h'.repeat(250)
    assert.notEqual(generatedFileBase(host, 'orders', now), generatedFileBase(host, 'invoices', now))
  })
})
