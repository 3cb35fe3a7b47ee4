// An agent whose stdout and stderr lead nowhere any more (the pipe of a supervisor that ended, a
// journal that restarted) loses its log lines and goes on: it answers, stays idle and stops on
// SIGTERM. Reporting an uncaught exception on a closed stderr raised the next one, a loop at
// 100 % CPU that no signal could end.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { startAgent } from '../helpers/agent.ts'

const PRELOAD = new URL('../helpers/throw-on-signal.mjs', import.meta.url).pathname

/** utime + stime of the process, in clock ticks. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return Number(fields[11]) + Number(fields[12])
}

/** The agent's CPU over a second of doing nothing, in clock ticks (a spinning one: ~100). */
async function idleTicks(pid: number): Promise<number> {
  await sleep(300)
  const before = cpuTicks(pid)
  await sleep(1000)
  return cpuTicks(pid) - before
}

const WRONG_LOGIN = 'Basic d3Jvbmc6d3Jvbmc='

it('with stdout and stderr closed, an uncaught exception is lost; the agent answers, idles and stops on SIGTERM', async () => {
  const agent = await startAgent({ env: { NODE_OPTIONS: `--import=${PRELOAD}` } })
  try {
    agent.closeOutput()
    assert.equal((await agent.request('GET', '/status', undefined, { auth: WRONG_LOGIN })).status, 401) // logged: a failed login
    agent.signal('SIGUSR2') // reported on stderr
    const used = await idleTicks(agent.pid)
    assert.ok(used < 30, `the agent used ${used} clock ticks of CPU in a second of doing nothing`)
    assert.equal((await agent.request('GET', '/status')).status, 200)
    const stopped = await Promise.race([agent.kill('SIGTERM'), sleep(10_000, 'still running')])
    assert.equal(stopped, 0, 'SIGTERM ends it')
  } finally {
    await agent.stop()
  }
})

it('with only stderr closed, an unhandled rejection is lost; the agent idles and logs on stdout', async () => {
  const agent = await startAgent({ env: { NODE_OPTIONS: `--import=${PRELOAD}` } })
  try {
    agent.closeOutput(['stderr'])
    agent.signal('SIGWINCH') // reported on stderr
    const used = await idleTicks(agent.pid)
    assert.ok(used < 30, `the agent used ${used} clock ticks of CPU in a second of doing nothing`)
    assert.equal((await agent.request('GET', '/status', undefined, { auth: WRONG_LOGIN })).status, 401)
    await agent.waitForOutput(/"msg":"login failed"/)
    const stopped = await Promise.race([agent.kill('SIGTERM'), sleep(10_000, 'still running')])
    assert.equal(stopped, 0, 'SIGTERM ends it')
  } finally {
    await agent.stop()
  }
})
