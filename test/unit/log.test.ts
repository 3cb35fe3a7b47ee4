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

  it('are one JSON object per line in pino\'s shape: level number, ISO time, service, fields, msg', () => {
    const { lines, log } = collect('info')
    log.child({ job: 'j1', kind: 'backup' }).child({}).warn({ stage: 'backup', nested: { n: 1 } }, 'stage "failed"\n')
    log.info('plain message')
    assert.equal(lines.length, 2)
    assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')))
    const first = JSON.parse(lines[0] as string)
    assert.deepEqual(Object.keys(first), ['level', 'time', 'service', 'job', 'kind', 'stage', 'nested', 'msg'])
    assert.equal(first.level, 40)
    assert.equal(new Date(first.time).toISOString(), first.time)
    assert.deepEqual([first.service, first.job, first.stage, first.nested, first.msg], ['osb-backup-agent', 'j1', 'backup', { n: 1 }, 'stage "failed"\n'])
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

