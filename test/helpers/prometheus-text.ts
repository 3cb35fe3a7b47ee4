// An independent reader of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), written from the format's
// grammar, not from src/metrics: it is the oracle the metrics tests check the agent's text against.
// It throws on any line the format does not allow, and on the rules that span lines.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface MetricFamily {
  name: string
  help: string | undefined
  type: string
  samples: Sample[]
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL_NAME = '[a-zA-Z_][a-zA-Z0-9_]*'
/** A quoted label value: any character but `"`, `\` and a line feed, or one of their escapes. */
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"'
/** Go's ParseFloat as Prometheus uses it, and the format's special values. */
const VALUE = '(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?Inf|NaN)'
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL_NAME}=${LABEL_VALUE})(?:,${LABEL_NAME}=${LABEL_VALUE})*,?)?\\})? (${VALUE})(?: (-?\\d+))?$`,
)
const LABEL_PAIR = new RegExp(`(${LABEL_NAME})=(${LABEL_VALUE})`, 'g')
const HELP = new RegExp(`^# HELP (${NAME}) ((?:[^\\\\\\n]|\\\\[\\\\n])*)$`)
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)

function unescapeText(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
}

function parseValue(text: string): number {
  if (/^[+]?Inf$/.test(text)) return Infinity
  if (text === '-Inf') return -Infinity
  return Number(text)
}

/** The families of an exposition, in order, after checking every line and the rules between them. */
export function parsePrometheusText(text: string): MetricFamily[] {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a line feed')
  const families: MetricFamily[] = []
  const byName = new Map<string, MetricFamily>()
  const seriesSeen = new Set<string>()
  let current: MetricFamily | undefined
  const family = (name: string): MetricFamily => {
    let found = byName.get(name)
    if (found && found !== current) throw new Error(`the lines of ${name} are not together`)
    if (!found) {
      found = { name, help: undefined, type: 'untyped', samples: [] }
      byName.set(name, found)
      families.push(found)
    }
    current = found
    return found
  }
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    let m: RegExpExecArray | null
    if ((m = HELP.exec(line))) {
      const f = family(m[1] as string)
      if (f.help !== undefined) throw new Error(`a second HELP for ${f.name}`)
      f.help = unescapeText(m[2] as string)
    } else if ((m = TYPE.exec(line))) {
      const f = family(m[1] as string)
      if (f.samples.length > 0 || f.type !== 'untyped') throw new Error(`TYPE of ${f.name} after its samples or twice`)
      f.type = m[2] as string
    } else if (/^# (HELP|TYPE) /.test(line)) {
      throw new Error(`a malformed ${line.slice(2, 6)} line: ${JSON.stringify(line)}`)
    } else if (line.startsWith('#')) {
      // a comment: nothing to read
    } else if ((m = SAMPLE.exec(line))) {
      const name = m[1] as string
      const base =
        current && current.type === 'histogram' && [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`].includes(name)
          ? current.name
          : name
      const f = family(base)
      const labels: Record<string, string> = {}
      for (const [, label, quoted] of (m[2] ?? '').matchAll(LABEL_PAIR)) {
        if (Object.hasOwn(labels, label as string)) throw new Error(`label ${label} twice in: ${line}`)
        labels[label as string] = unescapeText((quoted as string).slice(1, -1))
      }
      const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`
      if (seriesSeen.has(series)) throw new Error(`a series twice: ${line}`)
      seriesSeen.add(series)
      f.samples.push({ name, labels, value: parseValue(m[3] as string) })
    } else {
      throw new Error(`not an exposition line: ${JSON.stringify(line)}`)
    }
  }
  for (const f of families) if (f.type === 'histogram') checkHistogram(f)
  return families
}

/** Per label set: `le` ascending to +Inf, counts cumulative, +Inf equal to _count, and a _sum. */
function checkHistogram(f: MetricFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const group = groups.get(key) ?? { buckets: [] }
    groups.set(key, group)
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${s.name} without le`)
      group.buckets.push([parseValue(le), s.value])
    } else if (s.name.endsWith('_sum')) group.sum = s.value
    else if (s.name.endsWith('_count')) group.count = s.value
    else throw new Error(`${s.name} in histogram ${f.name}`)
  }
  for (const [key, g] of groups) {
    const last = g.buckets.at(-1)
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`)
    for (let i = 1; i < g.buckets.length; i++) {
      const [le, count] = g.buckets[i] as [number, number]
      const [prevLe, prevCount] = g.buckets[i - 1] as [number, number]
      if (!(le > prevLe)) throw new Error(`${f.name}${key}: le not ascending`)
      if (count < prevCount) throw new Error(`${f.name}${key}: buckets not cumulative`)
    }
    if (g.count !== last[1]) throw new Error(`${f.name}${key}: _count ${g.count} is not the +Inf bucket ${last[1]}`)
    if (g.sum === undefined) throw new Error(`${f.name}${key}: no _sum`)
  }
}

/** The value of one sample, by name and labels (in any order). */
export function sampleValue(families: MetricFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort())
  for (const f of families)
    for (const s of f.samples) if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) return s.value
  return undefined
}
