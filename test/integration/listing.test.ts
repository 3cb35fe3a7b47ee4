// GET /backup and GET /restore: summaries newest first, status filter, limit and cursor.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerRestoreBody } from '../helpers/bodies.ts'

describe('job listings', () => {
  let agent: Agent
  const ids: string[] = []
  before(async () => {
    agent = await startAgent({ scripts: { backup: 'if [ "$fail" = 1 ]; then exit 1; fi; echo x > "$5.sql"' } })
    for (let i = 0; i < 5; i++) {
      const id = `list-${i}`
      ids.push(id)
      const parameters = i % 2 === 1 ? [{ fail: '1' }] : null
      assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, { type: 'LOCAL' }, { parameters }))).status, 201)
      await agent.waitFor('backup', id)
      await new Promise((r) => setTimeout(r, 5)) // distinct start times
    }
  })
  after(async () => {
    await agent.stop()
  })

  it('lists summaries newest first, without script output', async () => {
    const res = await agent.request('GET', '/backup')
    assert.equal(res.status, 200)
    const body = res.json()
    assert.deepEqual(
      body.jobs.map((j: { id: string }) => j.id),
      [...ids].reverse(),
    )
    assert.equal(body.next_cursor, null)
    const first = body.jobs[0]
    assert.deepEqual(Object.keys(first).sort(), [
      'end_time',
      'execution_time_ms',
      'filename',
      'filesize',
      'id',
      'start_time',
      'state',
      'status',
      'type',
    ])
    assert.equal(body.jobs[1].status, 'FAILED')
    assert.ok(body.jobs[1].error_message)
  })

  it('filters by status and pages with limit and cursor', async () => {
    const failed = (await agent.request('GET', '/backup?status=FAILED')).json()
    assert.deepEqual(
      failed.jobs.map((j: { id: string }) => j.id),
      ['list-3', 'list-1'],
    )
    const seen: string[] = []
    let cursor = ''
    for (let pages = 0; pages < 10; pages++) {
      const page = (await agent.request('GET', `/backup?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json()
      seen.push(...page.jobs.map((j: { id: string }) => j.id))
      if (!page.next_cursor) break
      cursor = page.next_cursor
    }
    assert.deepEqual(seen, [...ids].reverse())
  })

  it('keeps the kinds apart and answers 400 for a bad query', async () => {
    await agent.request('PUT', '/restore', managerRestoreBody('r-1', { type: 'LOCAL', skipStorage: true }))
    await agent.waitFor('restore', 'r-1')
    assert.deepEqual(
      (await agent.request('GET', '/restore')).json().jobs.map((j: { id: string }) => j.id),
      ['r-1'],
    )
    for (const query of ['status=DONE', 'limit=0', 'limit=abc', 'limit=1001', 'cursor=garbage']) {
      const res = await agent.request('GET', `/backup?${query}`)
      assert.equal(res.status, 400, query)
      assert.match(res.json().message, /invalid query/)
    }
    assert.equal((await agent.request('GET', '/backup', undefined, { auth: null })).status, 401)
  })
})
