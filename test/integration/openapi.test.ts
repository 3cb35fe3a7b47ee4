// GET /openapi.json (valid OpenAPI 3.1, every registered route present), GET /docs (rendered in
// headless Chromium: title and every path visible) and GET /metrics (parsed; counters move with
// a job).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Validator } from '@seriousme/openapi-schema-validator'
import { chromium } from 'playwright-core'
import { ROUTES } from '../../src/http/routes.ts'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { inProcessServers } from '../helpers/api-server.ts'
import { managerBackupBody, managerId } from '../helpers/bodies.ts'

const CHROMIUM = '/usr/bin/chromium'

describe('OpenAPI document', () => {
  it('is valid OpenAPI 3.1 and has every route the server serves', async () => {
    const servers = inProcessServers()
    const api = servers.make()
    try {
      await api.listen('127.0.0.1', 0)
      const { port } = api.server.address() as AddressInfo
      const base = `http://127.0.0.1:${port}`
      const res = await fetch(`${base}/openapi.json`)
      assert.equal(res.status, 200)
      const doc = (await res.json()) as any
      assert.equal(doc.openapi, '3.1.0')
      const result = await new Validator().validate(doc)
      assert.ok(result.valid, JSON.stringify(result.errors, null, 2))

      assert.ok(ROUTES.length >= 15, `only ${ROUTES.length} routes seen`)
      const authorization = `Basic ${Buffer.from('u:p').toString('base64')}`
      for (const { method, path } of ROUTES) {
        const documented = path.replace(/:(\w+)/g, '{$1}')
        assert.ok(doc.paths[documented]?.[method.toLowerCase()], `${method} ${documented} is not in /openapi.json`)
        // the server serves what the table lists: neither 404 "no such route" nor 405
        const served = await fetch(`${base}${path.replace(/:\w+/g, 'x')}`, {
          method,
          headers: { authorization },
          body: method === 'GET' ? undefined : '{}',
        })
        const text = await served.text()
        assert.ok(served.status !== 405 && !text.includes('no such route'), `${method} ${path} answered ${served.status} ${text}`)
      }
      // every field of the polling bodies is documented
      for (const kind of ['backup', 'restore']) {
        const body = doc.paths[`/${kind}/{id}`].get.responses['200'].content['application/json'].schema
        for (const [name, field] of Object.entries<{ description?: string }>(body.properties))
          assert.ok(field.description, `${kind} polling field ${name} has no description`)
      }
    } finally {
      await api.close()
      servers.close()
    }
  })
})

describe('docs page and metrics on a running agent', () => {
  let agent: Agent
  before(async () => {
    agent = await startAgent({ scripts: { backup: 'if [ "$fail" = 1 ]; then exit 1; fi; echo rows > "$5.sql"' } })
  })
  after(async () => {
    await agent.stop()
  })

  it('serves /openapi.json and /docs without credentials, with no secret in them', async () => {
    for (const path of ['/openapi.json', '/docs']) {
      const res = await agent.request('GET', path, undefined, { auth: null })
      assert.equal(res.status, 200, path)
      assert.ok(!res.text.includes(agent.password), `${path} contains the agent's password`)
    }
  })

  it('renders /docs in headless Chromium with the title and every path visible', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`)
    const doc = (await agent.request('GET', '/openapi.json')).json()
    const profile = await mkdtemp(join(tmpdir(), 'osb-chromium-'))
    let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined
    try {
      // a fresh profile (--user-data-dir) per run
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 900 },
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      })
      const page = await browser.newPage()
      await page.goto(`${agent.url}/docs`)
      assert.equal(await page.title(), doc.info.title)
      const screenshot = join(profile, 'docs.png')
      await page.screenshot({ path: screenshot, fullPage: true })
      assert.ok(existsSync(screenshot))
      assert.ok(await page.getByRole('heading', { level: 1, name: doc.info.title }).isVisible())
      for (const [path, item] of Object.entries<Record<string, unknown>>(doc.paths)) {
        for (const method of Object.keys(item)) {
          const heading = page.locator('section.operation h3', {
            hasText: new RegExp(`^${method.toUpperCase()}\\s+${path.replace(/[{}.]/g, '\\$&')}\\s`),
          })
          assert.equal(await heading.count(), 1, `${method} ${path} heading`)
          assert.ok(await heading.isVisible(), `${method} ${path} is not visible`)
        }
      }
    } finally {
      await browser?.close()
      await rm(profile, { recursive: true, force: true })
    }
  })

  it('/metrics needs credentials, parses, and counts a job', async () => {
    assert.equal((await agent.request('GET', '/metrics', undefined, { auth: null })).status, 401)
    const before = parseMetrics((await agent.request('GET', '/metrics')).text)
    const ok = managerId()
    await agent.request('POST', '/backup', managerBackupBody(ok, { type: 'LOCAL' }))
    assert.equal((await agent.waitFor('backup', ok)).status, 'SUCCEEDED')
    const failed = managerId()
    await agent.request('POST', '/backup', managerBackupBody(failed, { type: 'LOCAL' }, { parameters: [{ fail: '1' }] }))
    assert.equal((await agent.waitFor('backup', failed)).status, 'FAILED')

    const res = await agent.request('GET', '/metrics')
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
    const after = parseMetrics(res.text)
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0)
    assert.equal(delta('osb_backup_agent_jobs_started_total{kind="backup"}'), 2)
    assert.equal(delta('osb_backup_agent_jobs_finished_total{kind="backup",status="SUCCEEDED"}'), 1)
    assert.equal(delta('osb_backup_agent_jobs_finished_total{kind="backup",status="FAILED"}'), 1)
    assert.equal(delta('osb_backup_agent_job_failures_total{kind="backup",reason="script"}'), 1)
    assert.equal(after.get('osb_backup_agent_jobs_running{kind="backup"}'), 0)
    assert.equal(delta('osb_backup_agent_transfer_bytes_total{backend="local",direction="upload"}'), 5)
    assert.equal(delta('osb_backup_agent_transfer_duration_seconds_count{backend="local",direction="upload"}'), 1)
    assert.equal(delta('osb_backup_agent_stage_duration_seconds_count{kind="backup",stage="backup",outcome="ok"}'), 1)
    assert.equal(delta('osb_backup_agent_stage_duration_seconds_count{kind="backup",stage="backup",outcome="failed"}'), 1)
  })

  it('/metrics is public with metrics_public=true', async () => {
    const open = await startAgent({ env: { metrics_public: 'true' } })
    try {
      assert.equal((await open.request('GET', '/metrics', undefined, { auth: null })).status, 200)
      assert.equal((await open.request('GET', '/backup', undefined, { auth: null })).status, 401)
    } finally {
      await open.stop()
    }
  })
})

/** Prometheus text format: `name{labels} value` lines to a map (comments skipped). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    assert.ok(match, `not a metrics line: ${line}`)
    out.set(match[1] as string, Number(match[2]))
  }
  return out
}
