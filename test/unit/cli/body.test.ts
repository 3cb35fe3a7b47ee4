import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { triggerBody } from '../../../src/cli/body.ts'
import { CliError } from '../../../src/cli/client.ts'
import { progressLine } from '../../../src/cli/progress.ts'

describe('CLI trigger bodies', () => {
  it('builds a LOCAL backup from flags, secrets only from the environment', async () => {
    const body = await triggerBody(
      'backup',
      { database: 'shop', prefix: 'pg/', param: ['port=5433', 'x=a=b'] },
      { OSB_DB_PASSWORD: 'pw', OSB_ENCRYPTION_KEY: 'k' },
    )
    assert.match(body.id, /^cli-\d{14}-[0-9a-f]{6}$/)
    assert.deepEqual(body.destination, { type: 'LOCAL', filenamePrefix: 'pg/' })
    assert.deepEqual(body.backup, {
      host: 'localhost',
      username: 'demo',
      password: 'pw',
      database: 'shop',
      parameters: [{ port: '5433' }, { x: 'a=b' }],
    })
    assert.equal(body.encryption_key, 'k')
  })

  it("--param adds to the body file's parameters, given as a list or as one object", async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'osb-cli-body-'))
    try {
      const file = join(dir, 'body.json')
      await writeFile(file, JSON.stringify({ backup: { parameters: { retries: 3, db_pass: 'x' } } }))
      assert.deepEqual((await triggerBody('backup', { body: file, param: ['port=1'] }, {})).backup.parameters, [
        { retries: 3 },
        { db_pass: 'x' },
        { port: '1' },
      ])
      await writeFile(file, JSON.stringify({ backup: { parameters: [{ retries: 3 }] } }))
      assert.deepEqual((await triggerBody('backup', { body: file, param: ['port=1'] }, {})).backup.parameters, [
        { retries: 3 },
        { port: '1' },
      ])
    } finally {
      await rm(dir, { recursive: true })
    }
  })

  it('a restore needs a file name; a bad --param is a usage error', async () => {
    await assert.rejects(triggerBody('restore', {}, {}), (e: Error) => e instanceof CliError && e.exitCode === 2)
    await assert.rejects(triggerBody('backup', { param: ['NOEQUALS'] }, {}), CliError)
    const restore = await triggerBody('restore', { filename: 'f.txt', id: 'r1' }, {})
    assert.equal(restore.destination.filename, 'f.txt')
    assert.equal(restore.id, 'r1')
  })
})

describe('CLI errors about the body', () => {
  it('never quote the body file or a --param value', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = await mkdtemp(join(tmpdir(), 'osb-cli-body-'))
    const secret = 'Sup3r-Secret-Pw-xyz'
    try {
      // each a different JSON.parse message; one of them quotes an excerpt of the text
      for (const text of [
        `{"backup":{"password": ${secret}}}`,
        `{"password":"${secret}"} x`,
        `{"password":"${secret}`,
        `{"password":"${secret}\u0001"}`,
        `{"password": "${secret}", }`,
      ]) {
        const file = join(dir, 'body.json')
        await writeFile(file, text)
        await assert.rejects(triggerBody('backup', { body: file }, {}), (e: Error) => {
          assert.ok(e instanceof CliError && e.exitCode === 2)
          assert.match(e.message, /is not valid JSON/)
          for (let n = 4; n <= secret.length; n++)
            assert.ok(!e.message.includes(secret.slice(0, n)) && !e.message.includes(secret.slice(-n)), e.message)
          assert.ok(!/'S'|"S"/.test(e.message), e.message)
          return true
        })
      }
    } finally {
      await rm(dir, { recursive: true })
    }
    await assert.rejects(triggerBody('backup', { param: [`=${secret}`] }, {}), (e: Error) => !e.message.includes(secret.slice(0, 6)))
    await assert.rejects(triggerBody('backup', { param: [secret] }, {}), (e: Error) => !e.message.includes(secret.slice(0, 6)))
  })
})

describe('progress line', () => {
  it('shows the stage and how far the job is', () => {
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'backup', skip_storage: false }),
      '[########----------------] 3/6 backup',
    )
    assert.equal(
      progressLine('backup', { status: 'RUNNING', state: 'backup', skip_storage: true }),
      '[##########--------------] 3/5 backup',
    )
    assert.equal(progressLine('restore', { status: 'FAILED', state: 'finished' }), '[########################] FAILED')
  })
})
