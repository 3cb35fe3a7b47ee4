import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MASK, TailCapture, maskSecrets } from '../../../src/scripts/capture.ts'

describe('TailCapture', () => {
  it('keeps everything below the limit, unmarked', () => {
    const c = new TailCapture(100, [])
    c.push(Buffer.from('hello '))
    c.push(Buffer.from('world'))
    assert.equal(c.text(), 'hello world')
  })

  it('keeps only the last maxBytes, with a note', () => {
    const c = new TailCapture(10, [])
    for (let i = 0; i < 10_000; i++) c.push(Buffer.from(`line ${i}\n`))
    const text = c.text()
    assert.match(text, /^\[output cut: earlier bytes not kept, showing the last 10 bytes\]\n/)
    assert.ok(text.endsWith('line 9999\n'))
  })

  it('masks secrets, also when one straddles two chunks or the cut', () => {
    const c = new TailCapture(12, ['topsecret'])
    c.push(Buffer.from('x'.repeat(100) + 'pw=tops'))
    c.push(Buffer.from('ecret!'))
    const text = c.text()
    assert.ok(!text.includes('secret'), text)
    assert.ok(!text.includes('tops'), text)
  })

  it('masks the longer of two overlapping secrets whole', () => {
    const c = new TailCapture(1000, ['abc', 'abcdef'])
    c.push(Buffer.from('<abcdef> <abc>'))
    assert.equal(c.text(), `<${MASK}> <${MASK}>`)
  })

  it('stays bounded in memory whatever is pushed', () => {
    const c = new TailCapture(1024, ['s3cr3t'])
    const chunk = Buffer.alloc(64 * 1024, 'a')
    for (let i = 0; i < 2000; i++) c.push(chunk) // 128 MiB through a 1 KiB window
    assert.ok(c.text().length < 2048)
  })
})

describe('maskSecrets', () => {
  it('replaces every occurrence and ignores empty secrets', () => {
    assert.equal(maskSecrets('a pw b pw', ['pw', '']), `a ${MASK} b ${MASK}`)
  })
})
