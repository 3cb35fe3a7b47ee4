// What a start costs in Node's own modules: an agent that restarts on its store and answers
// authenticated polls has not loaded node:crypto (~20 internal modules, ~8 ms of a start here;
// docs/PERFORMANCE.md). A job, another spelling of the credentials or a first start (which makes
// the store's key) load it when they need it.
import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startAgent, type Agent } from '../helpers/agent.ts'

const PRELOAD = new URL('../helpers/module-list.mjs', import.meta.url).pathname

/** The agent's loaded built-in modules, by name (`crypto`, `internal/crypto/keys`, …). */
async function loadedModules(agent: Agent, file: string): Promise<string[]> {
  rmSync(file, { force: true })
  agent.signal('SIGUSR2')
  for (let i = 0; i < 200 && !existsSync(file); i++) await sleep(10)
  const names = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('NativeModule '))
    .map((line) => line.slice('NativeModule '.length))
  assert.ok(names.includes('http'), 'the list is read from a running agent')
  return names
}

it('a restarted agent answers polls without loading node:crypto; a login checked by digests loads it', async () => {
  const first = await startAgent()
  await first.stop({ keepFiles: true })
  const options = first.restartOptions()
  const agent = await startAgent({
    ...options,
    env: { ...options.env, NODE_OPTIONS: `--import=${PRELOAD}`, OSB_TEST_MODULE_LIST: join(first.root, 'modules') },
  })
  try {
    assert.equal((await agent.request('GET', '/backup/none-such')).status, 404)
    const atStart = await loadedModules(agent, join(first.root, 'modules'))
    assert.deepEqual(
      atStart.filter((name) => name.includes('crypto')),
      [],
    )
    // a wrong login, or another spelling of the right one, is checked by digests: that loads it
    assert.equal((await agent.request('GET', '/backup/none-such', undefined, { auth: 'Basic bm9uZTpub25l' })).status, 401)
    const other = `basic ${Buffer.from(`${agent.username}:${agent.password}`).toString('base64').replace(/=+$/, '')}`
    assert.equal((await agent.request('GET', '/backup/none-such', undefined, { auth: other })).status, 404)
    assert.ok((await loadedModules(agent, join(first.root, 'modules'))).includes('crypto'))
  } finally {
    await agent.stop()
  }
})
