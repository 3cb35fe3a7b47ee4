// Concurrent triggers against a real agent: the job slots and the id check hold under a burst.
// The lock script waits for a gate file, so every accepted job is still running while the burst
// is counted.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, skipStorageDestination } from '../helpers/bodies.ts'

const WAIT_FOR_GATE = 'while [ ! -e "$gate" ]; do sleep 0.05; done'

const countBy = (statuses: number[]) => {
  const counts: Record<number, number> = {}
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1
  return counts
}

describe('contention', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({ env: { max_job_number: '10' }, scripts: { 'pre-backup-lock': WAIT_FOR_GATE } })
  })
  after(() => agent.stop())

  const trigger = (id: string, gate: string) =>
    agent.request('POST', '/backup', managerBackupBody(id, skipStorageDestination(), { parameters: { gate, job: id } }))

  it('500 concurrent triggers with distinct ids and max_job_number 10: exactly 10 accepted, 490 answered 429', async () => {
    const gate = join(agent.root, 'gate-500')
    const ids = Array.from({ length: 500 }, () => managerId())
    const replies = await Promise.all(ids.map((id) => trigger(id, gate)))
    assert.deepEqual(countBy(replies.map((r) => r.status)), { 201: 10, 429: 490 })
    const accepted = ids.filter((_, i) => replies[i]?.status === 201)
    const refused = ids.filter((_, i) => replies[i]?.status === 429)
    for (const reply of replies.filter((r) => r.status === 429)) assert.match(reply.json().error_message, /max_job_number/)
    const polls = await Promise.all(refused.map((id) => agent.request('GET', `/backup/${id}`)))
    assert.ok(
      polls.every((p) => p.status === 404),
      'a refused trigger registers no job',
    )
    assert.deepEqual((await readdir(agent.backupDir)).sort(), [...accepted].sort(), 'and creates no directory')

    await writeFile(gate, '')
    for (const id of accepted) assert.equal((await agent.waitFor('backup', id)).status, 'SUCCEEDED')
  })

  it('200 concurrent triggers of one id: exactly one accepted, 199 answered 409 with that job', async () => {
    const gate = join(agent.root, 'gate-200')
    const id = managerId()
    const replies = await Promise.all(Array.from({ length: 200 }, () => trigger(id, gate)))
    assert.deepEqual(countBy(replies.map((r) => r.status)), { 201: 1, 409: 199 })
    for (const reply of replies.filter((r) => r.status === 409)) assert.equal(reply.json().status, 'RUNNING')
    await writeFile(gate, '')
    assert.equal((await agent.waitFor('backup', id)).status, 'SUCCEEDED')
    assert.deepEqual(
      await agent.stagesRun(id),
      ['pre-backup-lock', 'pre-backup-check', 'backup', 'backup-cleanup', 'post-backup-unlock'],
      'the scripts ran once',
    )
  })
})
