import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { MALLOC_TRIM_ADDON, mallocTrim, memoryReleaser, transferMemory } from '../../../src/util/idle-memory.ts'

test('one collection a delay after the last job ended, caches dropped first, none while a job runs', async () => {
  let collections = 0
  const order: string[] = []
  let idle = true
  const jobEnded = memoryReleaser(() => idle, {
    delayMs: 30,
    collect: () => {
      collections++
      order.push('collect')
    },
    before: () => order.push('caches'),
  })
  jobEnded()
  await sleep(10)
  jobEnded() // a second job ended within the delay: the timer starts again, one collection
  await sleep(15)
  assert.equal(collections, 0, 'the delay restarts when another job ends')
  await sleep(40)
  assert.equal(collections, 1)
  assert.deepEqual(order, ['caches', 'collect'])
  idle = false // a job started before the timer fired: nothing collected while it runs
  jobEnded()
  await sleep(60)
  assert.equal(collections, 1)
})

test('without a collector (no --expose-gc) it does nothing, not even ask whether the agent is idle', async () => {
  let asked = false
  const jobEnded = memoryReleaser(() => (asked = true), { delayMs: 1, collect: undefined })
  jobEnded()
  await sleep(20)
  assert.equal(asked, false)
})

test('after a transfer: one collection on the next turn, not inside the stage that ended', async () => {
  let collections = 0
  transferMemory(() => collections++).ended()
  assert.equal(collections, 0, 'not synchronously: the stage that ended is still on the stack')
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(collections, 1)
  transferMemory(undefined).ended() // without a collector: nothing happens, nothing throws
})

test('during a transfer: one collection each time another share of bytes has moved, counted per transfer', () => {
  let collections = 0
  const memory = transferMemory(() => collections++, 100)
  const first = memory.during()
  for (const done of [0, 40, 99]) first(done)
  assert.equal(collections, 0, 'not before the first share has moved')
  first(100)
  first(150)
  assert.equal(collections, 1)
  first(420) // progress came in a big step: one collection, not three
  assert.equal(collections, 2)
  const second = memory.during()
  second(120)
  assert.equal(collections, 3, 'a second transfer counts its own bytes')
  first(480)
  assert.equal(collections, 3)
  const none = transferMemory(undefined, 100).during()
  none(1_000) // without a collector: nothing happens, nothing throws
})

test("the launcher maps buffers of 4 MiB and more on their own, so a transfer's freed part buffers leave RSS", () => {
  const launcher = readFileSync(new URL('../../../bin/osb-backup-agent', import.meta.url).pathname, 'utf8')
  const threshold = Number(/MALLOC_MMAP_THRESHOLD_:-(\d+)/.exec(launcher)?.[1])
  assert.ok(threshold <= 5 * 1024 * 1024, `an S3 stream's 5 MiB parts are mapped (threshold ${threshold})`)
  assert.ok(threshold > 1024 * 1024, `a 64 KiB socket read or a 1 MiB download batch is not (threshold ${threshold})`)
})

test('the launcher gives the agent the collector, and its last-resort flavour releases pages', () => {
  const launcher = new URL('../../../bin/osb-backup-agent', import.meta.url).pathname
  const flags = /node_flags="\$node_flags --expose-gc"/.test(readFileSync(launcher, 'utf8'))
  assert.ok(flags, 'bin/osb-backup-agent passes --expose-gc')
  // The option object is V8's: an unknown flavour would be ignored silently, so check it collects.
  const child = spawnSync(
    process.execPath,
    [
      '--expose-gc',
      '-e',
      `
    let keep = []; for (let i = 0; i < 200000; i++) keep.push({ i, s: 'x' + i }); keep = null
    const before = process.memoryUsage().heapTotal
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    console.log(before > process.memoryUsage().heapTotal ? 'smaller' : 'same')`,
    ],
    { encoding: 'utf8' },
  )
  assert.equal(child.stdout.trim(), 'smaller', child.stderr)
})

test("the trim addon is built (tools/build-native.sh) and hands glibc's free memory between blocks in use back", () => {
  assert.equal(typeof mallocTrim(), 'function', `${MALLOC_TRIM_ADDON} is missing or does not load`)
  // 64 KiB blocks (malloc'd, below the mmap threshold) with a small one kept after every tenth:
  // freed, they leave holes that free() cannot hand back, only malloc_trim.
  const child = spawnSync(
    process.execPath,
    [
      '-e',
      `
    const addon = { exports: {} }; process.dlopen(addon, ${JSON.stringify(MALLOC_TRIM_ADDON)})
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024
    const keep = []; let blocks = []
    for (let i = 0; i < 2000; i++) { blocks.push(Buffer.allocUnsafeSlow(65536).fill(1)); if (i % 10 === 9) keep.push(Buffer.allocUnsafeSlow(64).fill(2)) }
    blocks = null; globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    setTimeout(() => { const before = rss(); addon.exports.trim(); console.log(JSON.stringify({ before, after: rss(), kept: keep.length })) }, 300)`,
    ],
    { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '--expose-gc' } },
  )
  const { before, after } = JSON.parse(child.stdout || '{}') as { before: number; after: number }
  assert.ok(before - after > 50, `RSS ${before} -> ${after} MB: at least 50 of the ~125 MB freed goes back (${child.stderr})`)
})
