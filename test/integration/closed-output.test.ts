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

it('with stdout and stderr closed, an uncaught exception is lost; the agent answers, idles and stops on SIGTERM', async () => {
  const agent = await startAgent({ env: { NODE_OPTIONS: `--import=${PRELOAD}` } })
  try {
    agent.closeOutput()
    assert.equal((await agent.request('GET', '/status', undefined, { auth: 'Basic d3Jvbmc6d3Jvbmc=' })).status, 401) // logged: a failed login
    agent.signal('SIGUSR2') // reported on stderr
    await sleep(300)
    const before = cpuTicks(agent.pid)
    await sleep(1000)
    const used = cpuTicks(agent.pid) - before
    assert.ok(used < 30, `the agent used ${used} clock ticks of CPU in a second of doing nothing`)
    assert.equal((await agent.request('GET', '/status')).status, 200)
    const stopped = await Promise.race([agent.kill('SIGTERM'), sleep(10_000, 'still running')])
    assert.equal(stopped, 0, 'SIGTERM ends it')
  } finally {
    await agent.stop()
  }
})
