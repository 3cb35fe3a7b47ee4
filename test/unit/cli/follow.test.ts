// `wait` and --wait: what they print while a job runs, and the exit code once it ended.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { AgentClient } from '../../../src/cli/client.ts'
import { type Io, waitFor } from '../../../src/cli/follow.ts'

/** A client whose polls answer the given bodies in turn (the last one again and again). */
function clientAnswering(bodies: Record<string, unknown>[]): AgentClient {
  let n = 0
  return { poll: async () => ({ kind: 'verify', body: bodies[Math.min(n++, bodies.length - 1)] }) } as unknown as AgentClient
}

function captured(tty: boolean): { io: Io; out: string[]; err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t) => out.push(t), err: (t) => err.push(t), tty, env: {}, cwd: '/' }, out, err }
}

const reading = (done: number) => ({
  status: 'RUNNING',
  state: 'verify',
  progress: { bytes_done: done, bytes_total: 1000, bytes_per_second: 0 },
})
const succeeded = {
  status: 'SUCCEEDED',
  state: 'finished',
  message: 'verify successfully carried out',
  type: 'LOCAL',
  checksum: { algorithm: 'sha256', value: 'ab' },
  checksum_verified: true,
  verification: { bytes_read: 1000, format: 'file', frames_authenticated: null },
}

describe('following a job', () => {
  it('not on a terminal: a line per stage, not one per poll of a read in progress', async () => {
    const { io, out, err } = captured(false)
    const code = await waitFor(
      clientAnswering([reading(100), reading(200), reading(300), succeeded]),
      'v1',
      'verify',
      { intervalMs: 0, timeoutMs: Infinity, json: false },
      io,
    )
    assert.equal(code, 0)
    assert.deepEqual(err, [
      'verify v1 [------------------------] 1/1 verify 10% (0.1/1.0 kB)\n',
      'verify v1 [########################] SUCCEEDED\n',
    ])
    assert.match(out.join('\n'), /^verified: 1000 bytes read, SHA-256 ab matches$/m)
  })

  it('on a terminal: every change, in place', async () => {
    const { io, err } = captured(true)
    await waitFor(
      clientAnswering([reading(100), reading(100), reading(300), succeeded]),
      'v1',
      'verify',
      { intervalMs: 0, timeoutMs: Infinity, json: false },
      io,
    )
    assert.equal(err.length, 3)
    assert.ok(err.every((line) => line.startsWith('\r\x1b[2Kverify v1 ')))
    assert.match(err[1] as string, / 30% \(0.3\/1.0 kB\)$/)
  })

  it('exits 1 for FAILED, prints the body with --json, and gives up after --timeout', async () => {
    const json = captured(false)
    const failed = { ...succeeded, status: 'FAILED', error_message: 'checksum mismatch: x' }
    assert.equal(await waitFor(clientAnswering([failed]), 'v1', 'verify', { intervalMs: 0, timeoutMs: Infinity, json: true }, json.io), 1)
    assert.deepEqual(JSON.parse(json.out[0] as string), failed)
    assert.deepEqual(json.err, [], '--json: stdout holds the body, stderr nothing')
    await assert.rejects(
      waitFor(clientAnswering([reading(1)]), 'v1', 'verify', { intervalMs: 5, timeoutMs: 20, json: false }, captured(false).io),
      /verify v1 is still running \(state verify\) after --timeout/,
    )
  })
})
