// Finding the processes that hold a pipe (by device and inode, not by name) and stopping them:
// real processes, killed by pid in after().
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, lstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { processesHolding, processGroupOf, stopProcesses, type FileIdentity } from '../../../src/scripts/process-group.ts'

const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

describe('processes that hold a pipe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'osb-holders-'))
  const started: number[] = []
  after(() => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })

  /** A fifo at `name` and a `sleep` in a group of its own (or `bash -c`) with the fifo as its stdout. */
  function holder(name: string, command: string[] = ['sleep', '1000']): { pid: number; pipe: FileIdentity } {
    const path = join(dir, name)
    execFileSync('mkfifo', [path])
    const info = lstatSync(path)
    const fd = openSync(path, constants.O_RDWR) // a fifo opened read-write does not wait for a peer
    const child = spawn(command[0] as string, command.slice(1), { stdio: ['ignore', fd, 'ignore'], detached: true })
    closeSync(fd)
    started.push(child.pid as number)
    return { pid: child.pid as number, pipe: { dev: info.dev, ino: info.ino } }
  }

  it('finds the holders by identity, also once the name is gone or names another pipe, with their process group', async () => {
    const first = holder('stream')
    rmSync(join(dir, 'stream'))
    const second = holder('stream') // the same name, another pipe
    const found = await processesHolding(first.pipe)
    assert.deepEqual(
      found.map((h) => h.pid),
      [first.pid],
    )
    assert.equal(found[0]?.group, first.pid, 'detached: its own group')
    assert.equal(processGroupOf(first.pid), first.pid)
    assert.deepEqual(
      (await processesHolding(second.pipe)).map((h) => h.pid),
      [second.pid],
    )
    // the agent's own descriptors never count
    const mine = openSync(join(dir, 'stream'), constants.O_RDWR)
    try {
      assert.deepEqual(
        (await processesHolding(second.pipe)).map((h) => h.pid),
        [second.pid],
      )
    } finally {
      closeSync(mine)
    }
  })

  it('stops holders with SIGTERM, and with SIGKILL one that ignores it', async () => {
    const polite = holder('polite')
    const stubborn = holder('stubborn', ['bash', '-c', "trap '' TERM; exec sleep 1000"])
    await new Promise((resolve) => setTimeout(resolve, 100)) // bash has set its trap and exec'd
    const holders = [...(await processesHolding(polite.pipe)), ...(await processesHolding(stubborn.pipe))]
    assert.deepEqual(
      holders.map((h) => h.pid),
      [polite.pid, stubborn.pid],
    )
    await stopProcesses(holders, 200)
    assert.equal(alive(polite.pid), false)
    assert.equal(alive(stubborn.pid), false)
  })

  it('never signals a pid whose process is not the one found (its start time differs)', async () => {
    const target = holder('recycled')
    const [found] = await processesHolding(target.pipe)
    assert.ok(found)
    await stopProcesses([{ ...found, startTime: '1' }], 50)
    assert.equal(alive(target.pid), true, 'a different start time: left alone')
  })
})
