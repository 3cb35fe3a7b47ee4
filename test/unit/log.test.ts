import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger } from '../../src/log.ts'

describe('logger redaction', () => {
  it('redacts secret fields at the top and one level down, whatever logs them', () => {
    const lines: string[] = []
    const log = createLogger('info', { write: (line: string) => void lines.push(line) })
    const secrets = ['pw-top-1', 'pw-nested-2', 'key-3', 'env-pw-4', 'env-key-5', 'Basic c2VjcmV0', 'swift-6', 's3-7']
    log.info({ password: secrets[0], request: { password: secrets[1], encryption_key: secrets[2] } }, 'a')
    log.warn({ env: { DB_PASSWORD: secrets[3], ENCRYPTION_KEY: secrets[4], SWIFT_PASSWORD: secrets[6], S3_AUTHSECRET: secrets[7] } }, 'b')
    log.error({ req: { headers: { authorization: secrets[5] } } }, 'c')
    const out = lines.join('')
    assert.equal(lines.length, 3)
    for (const secret of secrets) assert.ok(!out.includes(secret as string), `${secret} in ${out}`)
    assert.equal(out.match(/\[redacted\]/g)?.length, 8)
  })
})

describe('log lines', () => {
  const collect = (level: Parameters<typeof createLogger>[0]) => {
    const lines: string[] = []
    return { lines, log: createLogger(level, { write: (line: string) => void lines.push(line) }) }
  }

  it("are one JSON object per line in pino's shape: level number, ISO time, service, fields, msg", () => {
    const { lines, log } = collect('info')
    log
      .child({ job: 'j1', kind: 'backup' })
      .child({})
      .warn({ stage: 'backup', nested: { n: 1 } }, 'stage "failed"\n')
    log.info('plain message')
    assert.equal(lines.length, 2)
    assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')))
    const first = JSON.parse(lines[0] as string)
    assert.deepEqual(Object.keys(first), ['level', 'time', 'service', 'job', 'kind', 'stage', 'nested', 'msg'])
    assert.equal(first.level, 40)
    assert.equal(new Date(first.time).toISOString(), first.time)
    assert.deepEqual(
      [first.service, first.job, first.stage, first.nested, first.msg],
      ['osb-backup-agent', 'j1', 'backup', { n: 1 }, 'stage "failed"\n'],
    )
    assert.deepEqual(JSON.parse(lines[1] as string).msg, 'plain message')
  })

  it('below the level, or silent, write nothing; isLevelEnabled says so', () => {
    const info = collect('info')
    info.log.debug({ a: 1 }, 'hidden')
    info.log.trace('hidden')
    assert.equal(info.lines.length, 0)
    assert.equal(info.log.isLevelEnabled('debug'), false)
    assert.equal(info.log.isLevelEnabled('error'), true)
    const silent = collect('silent')
    silent.log.fatal('hidden')
    assert.equal(silent.lines.length, 0)
    assert.equal(silent.log.isLevelEnabled('fatal'), false)
  })

  it('writes an error as type, message and stack', () => {
    const { lines, log } = collect('trace')
    log.error({ err: new TypeError('bad thing') }, 'unexpected error')
    const err = JSON.parse(lines[0] as string).err
    assert.equal(err.type, 'TypeError')
    assert.equal(err.message, 'bad thing')
    assert.match(err.stack, /TypeError: bad thing/)
  })
})

describe('lines for a terminal', () => {
  /** A fake stdout: a terminal (isTTY) or not, collecting what is written. */
  const terminal = (isTTY: boolean) => {
    const lines: string[] = []
    return { lines, stream: { isTTY, write: (line: string) => void lines.push(line) } }
  }
  const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '')

  it('are pretty on a TTY: time, level name, message, then key=value; colours', () => {
    const { lines, stream } = terminal(true)
    const log = createLogger('info', stream)
    log.child({ job: 'j1', kind: 'backup' }).warn({ stage: 'backup', bytes: 42, note: 'two words', nested: { n: 1 } }, 'stage failed')
    assert.equal(lines.length, 1)
    const line = lines[0] as string
    assert.ok(line.includes('\x1b[33mWARN\x1b[0m'), `warn in yellow: ${JSON.stringify(line)}`)
    assert.match(
      plain(line),
      /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: stage failed {2}job=j1 kind=backup stage=backup bytes=42 note="two words" nested=\{"n":1\}\n$/,
    )
  })

  it('show each level by name', () => {
    const { lines, stream } = terminal(true)
    const log = createLogger('trace', stream)
    for (const name of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) log[name](name)
    assert.deepEqual(
      lines.map((l) => / (\w+): /.exec(plain(l))?.[1]),
      ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'],
    )
  })

  it('redact exactly what JSON lines redact', () => {
    const secrets = ['pw-top-1', 'pw-nested-2', 'key-3', 'env-pw-4', 'Basic c2VjcmV0']
    const logAll = (log: ReturnType<typeof createLogger>) => {
      log.child({ password: secrets[0] }).info({ request: { password: secrets[1], encryption_key: secrets[2] } }, 'a')
      log.error({ env: { DB_PASSWORD: secrets[3] }, req: { headers: { authorization: secrets[4] } } }, 'b')
    }
    const json = terminal(false)
    const pretty = terminal(true)
    logAll(createLogger('info', json.stream))
    logAll(createLogger('info', pretty.stream))
    assert.ok(
      json.lines.every((l) => l.startsWith('{')),
      'JSON off a terminal',
    )
    const out = pretty.lines.join('')
    for (const secret of secrets) assert.ok(!out.includes(secret), `${secret} in ${out}`)
    assert.equal(out.match(/\[redacted\]/g)?.length, 5)
    assert.equal(json.lines.join('').match(/\[redacted\]/g)?.length, 5)
  })

  it('escape control characters: a logged value cannot start a line or move the cursor', () => {
    const { lines, stream } = terminal(true)
    createLogger('info', stream).info({ value: 'a\x1b[2Jb', other: 'x\u009by' }, 'first\nINFO: forged')
    assert.equal(lines.length, 1)
    const line = plain(lines[0] as string)
    assert.equal(line.indexOf('\n'), line.length - 1)
    assert.ok(!line.includes('\x1b') && !line.includes('\u009b'), JSON.stringify(line))
    assert.ok(line.includes('first\\nINFO: forged') && line.includes('value="a\\u001b[2Jb"') && line.includes('other="x\\u009by"'), line)
  })

  it('write an error as Type: message, its stack frames on the lines below', () => {
    const { lines, stream } = terminal(true)
    createLogger('info', stream).error({ err: new TypeError('bad thing') }, 'unexpected error')
    const [first, ...frames] = plain(lines[0] as string)
      .trimEnd()
      .split('\n')
    assert.match(first as string, /ERROR: unexpected error {2}err="TypeError: bad thing"$/)
    assert.ok(frames.length > 0 && frames.every((f) => f.startsWith('    at ')), frames.join('\n'))
  })

  it('can be forced: pretty without colours off a terminal, JSON on one', () => {
    const file = terminal(false)
    createLogger('info', file.stream, 'pretty').info({ a: 1 }, 'to a file')
    assert.match(file.lines[0] as string, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: to a file {2}a=1\n$/)
    const tty = terminal(true)
    createLogger('info', tty.stream, 'json').info({ a: 1 }, 'to a terminal')
    assert.deepEqual(JSON.parse(tty.lines[0] as string).msg, 'to a terminal')
  })
})
