import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
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
    c.push(Buffer.from(`${'x'.repeat(100)}pw=tops`))
    c.push(Buffer.from('ecret!'))
    const text = c.text()
    assert.ok(!text.includes('secret'), text)
    assert.ok(!text.includes('tops'), text)
  })

  it('masks the longer of two overlapping secrets whole', () => {
    const c = new TailCapture(1000, ['abcd', 'abcdefgh'])
    c.push(Buffer.from('<abcdefgh> <abcd>'))
    assert.equal(c.text(), `<${MASK}> <${MASK}>`)
  })

  it('masks overlapping occurrences, also of two secrets, as one region', () => {
    const c = new TailCapture(1000, ['password-pass', 'pass-phrase'])
    c.push(Buffer.from('<password-password-pass> <password-pass-phrase>'))
    assert.equal(c.text(), `<${MASK}> <${MASK}>`)
  })

  it('masks the start of a secret at the end of the output (reading stopped mid-write)', () => {
    const c = new TailCapture(1000, ['correct-horse'])
    c.push(Buffer.from('the password is corr'))
    assert.equal(c.text(), `the password is ${MASK}`)
  })

  it("leaves no piece of a long secret printed many times at the cut (the review's case)", () => {
    const secret = 'Zy8-'.repeat(25) // 100 characters
    const c = new TailCapture(1000, [secret])
    for (let i = 0; i < 500; i++) c.push(Buffer.from(`${secret}\n`))
    const text = c.text()
    assert.ok(!text.includes('Zy8-'), text)
    assert.match(text, /^\[output cut: earlier bytes not kept, showing the last \d+ bytes]\n\n?(\*{6}\n)+$/)
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
    assert.equal(maskSecrets('a pass b pass', ['pass', '']), `a ${MASK} b ${MASK}`)
  })

  it('masks JSON and shell forms in messages', () => {
    const secret = 'it\'s "x"'
    assert.equal(maskSecrets(`json ${JSON.stringify(secret)} sh 'it'\\''s "x"'`, [secret]), `json "${MASK}" sh '${MASK}'`)
  })
})

// The cut, with generated secrets, lengths and repetitions. The filler and the secrets use
// disjoint characters, so any 4 characters of a secret form found in the text leaked from a print
// of the secret. The forms printed are made here (raw, JSON, URL, shell quote), not by src/.
describe('TailCapture at the edges', () => {
  const secretChar = fc.constantFrom('a', 'Z', '7', '-', "'", '"', '\\', ' ', '\n', 'é', '日', '😀', '$', '%')
  const secret = fc.array(secretChar, { minLength: 4, maxLength: 60 }).map((a) => a.join(''))
  const printed = (s: string) => [s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s), s.replaceAll("'", "'\\''")]
  const filler = fc.array(fc.constantFrom('.', ':', '\t'), { maxLength: 300 }).map((a) => a.join(''))

  const windows = (s: string) => Array.from({ length: Math.max(0, [...s].length - 3) }, (_, i) => [...s].slice(i, i + 4).join(''))

  it('no piece of 4 or more characters of a secret form survives, whatever the cut', () => {
    fc.assert(
      fc.property(
        secret,
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.tuple(filler, fc.integer({ min: 0, max: 400 })), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 8, max: 3000 }),
        fc.integer({ min: 1, max: 70_000 }),
        fc.option(fc.integer({ min: 1, max: 200 })),
        (s, formIndex, pieces, maxBytes, chunkSize, trailing) => {
          const form = printed(s)[formIndex] as string
          let stream = pieces.map(([f, times]) => f + `${form}`.repeat(times)).join('')
          // a process still printing when reading stopped: the start of a form at the end
          if (trailing !== null) stream += [...form].slice(0, trailing % [...form].length).join('')
          const bytes = Buffer.from(stream)
          const c = new TailCapture(maxBytes, [s])
          for (let at = 0; at < bytes.length; at += chunkSize) c.push(bytes.subarray(at, at + chunkSize))
          const text = c.text()
          const body = text.replace(/^\[output cut: earlier bytes not kept, showing the last (\d+) bytes\]\n/, '')
          assert.ok(Buffer.byteLength(body) <= maxBytes, `${Buffer.byteLength(body)} > ${maxBytes}`)
          if (body !== text) assert.equal(Buffer.byteLength(body), Number(/last (\d+) bytes/.exec(text)?.[1]))
          // no header: nothing but secrets was left out (every filler character is still there);
          // comparing string lengths instead failed for a secret of emoji, whose mask is no shorter
          else assert.equal(body.replace(/[^.:\t]/g, '').length, stream.replace(/[^.:\t]/g, '').length)
          for (const f of printed(s))
            for (const w of windows(f))
              if (!MASK.includes(w)) assert.ok(!body.includes(w), `${JSON.stringify(w)} of ${JSON.stringify(f)} in ${JSON.stringify(body)}`)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('keeps the end of the output and cuts plain text to exactly maxBytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('x', 'y', '\n'), { minLength: 1, maxLength: 5000 }),
        fc.integer({ min: 1, max: 4000 }),
        (chars, maxBytes) => {
          const stream = chars.join('')
          const c = new TailCapture(maxBytes, ['never-printed'])
          c.push(Buffer.from(stream))
          const text = c.text()
          if (stream.length <= maxBytes) assert.equal(text, stream)
          else assert.equal(text, `[output cut: earlier bytes not kept, showing the last ${maxBytes} bytes]\n${stream.slice(-maxBytes)}`)
        },
      ),
    )
  })
})
