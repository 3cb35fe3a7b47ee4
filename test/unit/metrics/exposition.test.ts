// The Prometheus text writer, checked against an independent reader of the format
// (test/helpers/prometheus-text.ts): lines, escaping, histograms, and the names it refuses.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CONTENT_TYPE, escapeHelp, escapeLabelValue, formatValue, Registry } from '../../../src/metrics/exposition.ts'
import { parsePrometheusText, sampleValue } from '../../helpers/prometheus-text.ts'

describe('Prometheus exposition', () => {
  it('says it is the text format 0.0.4 in UTF-8', () => {
    assert.equal(CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8')
  })

  it('writes HELP and TYPE before the samples of each family, one line per series', async () => {
    const r = new Registry()
    const jobs = r.counter('jobs_total', 'Jobs, by kind', ['kind'])
    const up = r.gauge('up', 'Whether it is up')
    jobs.inc({ kind: 'backup' })
    jobs.inc({ kind: 'backup' }, 2)
    jobs.inc({ kind: 'restore' })
    up.set({}, 1)
    const text = await r.render()
    assert.equal(
      text,
      [
        '# HELP jobs_total Jobs, by kind',
        '# TYPE jobs_total counter',
        'jobs_total{kind="backup"} 3',
        'jobs_total{kind="restore"} 1',
        '# HELP up Whether it is up',
        '# TYPE up gauge',
        'up 1',
        '',
      ].join('\n'),
    )
    const families = parsePrometheusText(text)
    assert.deepEqual(
      families.map((f) => [f.name, f.type]),
      [
        ['jobs_total', 'counter'],
        ['up', 'gauge'],
      ],
    )
  })

  it('shows a family without labels at zero before anything happened, and one with labels not at all', async () => {
    const r = new Registry()
    r.counter('plain_total', 'no labels')
    r.counter('labelled_total', 'labels', ['kind'])
    r.histogram('plain_seconds', 'no labels', [], [1])
    const families = parsePrometheusText(await r.render())
    assert.equal(sampleValue(families, 'plain_total'), 0)
    assert.deepEqual(families.find((f) => f.name === 'labelled_total')?.samples, [])
    assert.equal(sampleValue(families, 'plain_seconds_count'), 0)
    assert.equal(sampleValue(families, 'plain_seconds_bucket', { le: '+Inf' }), 0)
  })

  it('escapes label values (backslash, double quote, line feed) and HELP text (backslash, line feed)', async () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd')
    assert.equal(escapeHelp('a\\b"c\nd'), 'a\\\\b"c\\nd')
    assert.equal(escapeLabelValue('x\uD800y'), 'x\uFFFDy', 'a lone surrogate cannot be UTF-8')
    const r = new Registry()
    r.gauge('g', 'help with \\ and\na new line', ['v']).set({ v: 'a\\b"c\nd}{,=' }, 1)
    const text = await r.render()
    assert.match(text, /^g\{v="a\\\\b\\"c\\nd\}\{,="\} 1$/m)
    const [family] = parsePrometheusText(text)
    assert.equal(family?.help, 'help with \\ and\na new line')
    assert.deepEqual(family?.samples[0]?.labels, { v: 'a\\b"c\nd}{,=' })
  })

  it('any label value and HELP text reads back as written (generated strings)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 5 }),
        fc.string({ unit: 'binary' }),
        async (values, help) => {
          const r = new Registry()
          const g = r.gauge('g', help, ['v'])
          for (const [i, v] of values.entries()) g.set({ v }, i)
          const [family] = parsePrometheusText(await r.render())
          assert.equal(family?.help, help.toWellFormed())
          const wanted = new Map(values.map((v, i) => [v.toWellFormed(), i]))
          assert.deepEqual(new Map(family?.samples.map((s) => [s.labels.v, s.value])), wanted)
        },
      ),
    )
  })

  it('writes numbers as the format reads them', () => {
    const cases: [number, string][] = [
      [0, '0'],
      [5, '5'],
      [0.25, '0.25'],
      [1e-7, '1e-7'],
      [1.5e21, '1.5e+21'],
      [-3, '-3'],
      [Infinity, '+Inf'],
      [-Infinity, '-Inf'],
      [NaN, 'NaN'],
    ]
    for (const [value, text] of cases) assert.equal(formatValue(value), text)
    fc.assert(
      fc.property(fc.double(), (value) => {
        const r = parsePrometheusText(`x ${formatValue(value)}\n`)[0]?.samples[0]?.value
        assert.ok(Object.is(r, value) || (value === 0 && r === 0), `${value} read back as ${r}`)
      }),
    )
  })

  it('histograms: a value on a bound counts in that bucket, buckets are cumulative, +Inf is the count, _sum the total', async () => {
    const r = new Registry()
    const h = r.histogram('d_seconds', 'durations', ['kind'], [5, 0.1, 1]) // unsorted on purpose
    for (const v of [0.05, 0.1, 0.5, 1, 3, 5, 7, 100]) h.observe({ kind: 'a' }, v)
    h.observe({ kind: 'b' }, 2)
    const text = await r.render()
    const families = parsePrometheusText(text)
    const bucket = (kind: string, le: string) => sampleValue(families, 'd_seconds_bucket', { kind, le })
    assert.deepEqual(
      ['0.1', '1', '5', '+Inf'].map((le) => bucket('a', le)),
      [2, 4, 6, 8],
    )
    assert.equal(sampleValue(families, 'd_seconds_count', { kind: 'a' }), 8)
    assert.equal(sampleValue(families, 'd_seconds_sum', { kind: 'a' }), 0.05 + 0.1 + 0.5 + 1 + 3 + 5 + 7 + 100)
    assert.deepEqual(
      ['0.1', '1', '5', '+Inf'].map((le) => bucket('b', le)),
      [0, 0, 1, 1],
    )
    assert.match(text, /^d_seconds_bucket\{kind="a",le="\+Inf"\} 8$/m)
  })

  it('histograms match a count of the observations at or below each bound (generated)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.double({ min: -2e6, max: 2e6, noNaN: true }), { maxLength: 50 }),
        async (bounds, values) => {
          const r = new Registry()
          const h = r.histogram('h', 'generated', [], bounds)
          for (const v of values) h.observe({}, v)
          const families = parsePrometheusText(await r.render())
          for (const le of bounds)
            assert.equal(sampleValue(families, 'h_bucket', { le: formatValue(le) }), values.filter((v) => v <= le).length, `le=${le}`)
          assert.equal(sampleValue(families, 'h_count'), values.length)
        },
      ),
    )
  })

  it('counters never go down: a negative or non-finite increment is ignored, not thrown (a metric never stops a job)', async () => {
    const r = new Registry()
    const c = r.counter('c_total', 'c')
    c.inc({}, 2)
    for (const bad of [-1, NaN, Infinity]) c.inc({}, bad)
    assert.equal(sampleValue(parsePrometheusText(await r.render()), 'c_total'), 2)
  })

  it('refuses names the format does not allow, le on a histogram, and a family registered twice', () => {
    const r = new Registry()
    for (const name of ['', '1abc', 'a-b', 'a b', 'é']) assert.throws(() => r.counter(name, 'x'), /not a metric name/)
    for (const label of ['', '1a', 'a-b', '__reserved', 'a:b'])
      assert.throws(() => r.gauge(`g_${label.length}_${Math.random().toString(36).slice(2)}`, 'x', [label]), /not a label name/)
    assert.throws(() => r.histogram('h', 'x', ['le'], [1]), /not a label name/)
    assert.throws(() => r.gauge('twice', 'x', ['a', 'a']), /twice/)
    assert.throws(() => r.histogram('no_buckets', 'x', [], []), /buckets/)
    r.gauge('dup', 'x')
    assert.throws(() => r.counter('dup', 'x'), /registered twice/)
  })

  it('runs what is registered to run at each scrape before writing', async () => {
    const r = new Registry()
    const g = r.gauge('scraped', 'how many scrapes')
    let n = 0
    r.onScrape(async () => {
      await new Promise((resolve) => setImmediate(resolve))
      g.set({}, ++n)
    })
    await r.render()
    assert.equal(sampleValue(parsePrometheusText(await r.render()), 'scraped'), 2)
  })

  it('the oracle itself refuses what the format does not allow', () => {
    for (const bad of [
      'x 1',
      'x{a="1"} one\n',
      'x{a="\\q"} 1\n',
      'x{a="1"\n',
      '# TYPE x countr\n',
      'x 1\ny 1\nx 2\n',
      'x 1\nx 2\n',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ]) {
      assert.throws(() => parsePrometheusText(bad), Error, JSON.stringify(bad))
    }
  })
})
