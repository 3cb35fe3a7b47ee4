// The process's own figures, under the names prom-client's default metrics gave them (dashboards
// keep working): CPU, memory, file descriptors, libuv handles, V8 heap, GC pauses, event loop.
// Everything is read when /metrics is scraped; nothing runs in between while the agent is idle.
import { readdirSync, readFileSync } from 'node:fs'
import type { RecordableHistogram } from 'node:perf_hooks'
import type { Gauge, Registry } from './exposition.ts'

/** The delay sampling interval while a job runs: prom-client's, so the figures compare. */
const DELAY_RESOLUTION_MS = 10
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5]
// node:perf_hooks (a dozen modules, ~1 ms) loads at the first scrape or job, not at start: the
// global `performance` loads it too, so nothing on the path of a start touches that either.
const perfHooks = () => process.getBuiltinModule('node:perf_hooks')

type Internals = { _getActiveHandles?: () => object[]; _getActiveRequests?: () => object[] }

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const m = processMetrics(registry, prefix)
  const [major = '', minor = '', patch = ''] = process.versions.node.split('.')
  m.version.set({ version: process.version, major, minor, patch }, 1)
  m.startTime.set({}, Math.round(Date.now() / 1000 - process.uptime()))
  // Collections are counted from the first scrape on: the first PerformanceObserver costs 2-10 ms
  // (Node loads its observer modules), not to be spent at start-up. V8 reports each collection; no timer.
  let gcObserved = false
  const observeGc = () => {
    gcObserved = true
    const { constants, PerformanceObserver } = perfHooks()
    const GC_KINDS: Record<number, string> = {
      [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
      [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
      [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
      [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
    }
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = GC_KINDS[(entry as { detail?: { kind?: number } }).detail?.kind ?? -1]
        if (kind) m.gc.observe({ kind }, entry.duration / 1000)
      }
    }).observe({ entryTypes: ['gc'] })
  }

  registry.onScrape(() => {
    if (!gcObserved) observeGc()
    scrapeProcessFigures(m)
    scrapeNodeFigures(m)
  })
}

/** The metrics, registered in the order the exposition lists them. */
function processMetrics(registry: Registry, prefix: string) {
  const cpuUser = registry.counter(`${prefix}process_cpu_user_seconds_total`, 'Total user CPU time spent in seconds.')
  const cpuSystem = registry.counter(`${prefix}process_cpu_system_seconds_total`, 'Total system CPU time spent in seconds.')
  const cpuTotal = registry.counter(`${prefix}process_cpu_seconds_total`, 'Total user and system CPU time spent in seconds.')
  const startTime = registry.gauge(`${prefix}process_start_time_seconds`, 'Start time of the process since unix epoch in seconds.')
  const resident = registry.gauge(`${prefix}process_resident_memory_bytes`, 'Resident memory size in bytes.')
  const virtual = registry.gauge(`${prefix}process_virtual_memory_bytes`, 'Virtual memory size in bytes.')
  const heap = registry.gauge(`${prefix}process_heap_bytes`, 'Process heap size in bytes.')
  const openFds = registry.gauge(`${prefix}process_open_fds`, 'Number of open file descriptors.')
  const maxFds = registry.gauge(`${prefix}process_max_fds`, 'Maximum number of open file descriptors.')
  const byType = (name: string, help: string) => ({
    types: registry.gauge(`${prefix}nodejs_${name}`, help, ['type']),
    total: registry.gauge(`${prefix}nodejs_${name}_total`, `Total number of ${name.replace('_', ' ')}.`),
  })
  const resources = byType(
    'active_resources',
    'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
  )
  const handles = byType('active_handles', 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.')
  const requests = byType(
    'active_requests',
    'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
  )
  const heapTotal = registry.gauge(`${prefix}nodejs_heap_size_total_bytes`, 'Process heap size from Node.js in bytes.')
  const heapUsed = registry.gauge(`${prefix}nodejs_heap_size_used_bytes`, 'Process heap size used from Node.js in bytes.')
  const external = registry.gauge(`${prefix}nodejs_external_memory_bytes`, 'Node.js external memory size in bytes.')
  const spaces = (['total', 'used', 'available'] as const).map((figure) =>
    registry.gauge(`${prefix}nodejs_heap_space_size_${figure}_bytes`, `Process heap space size ${figure} from Node.js in bytes.`, [
      'space',
    ]),
  )
  const version = registry.gauge(`${prefix}nodejs_version_info`, 'Node.js version info.', ['version', 'major', 'minor', 'patch'])
  const gc = registry.histogram(
    `${prefix}nodejs_gc_duration_seconds`,
    'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    ['kind'],
    GC_BUCKETS,
  )

  return {
    cpuUser,
    cpuSystem,
    cpuTotal,
    startTime,
    resident,
    virtual,
    heap,
    openFds,
    maxFds,
    resources,
    handles,
    requests,
    heapTotal,
    heapUsed,
    external,
    spaces,
    version,
    gc,
  }
}

type ProcessMetrics = ReturnType<typeof processMetrics>

/** CPU, memory and file descriptors, from process and /proc. */
function scrapeProcessFigures(m: ProcessMetrics): void {
  const cpu = process.cpuUsage()
  m.cpuUser.set({}, cpu.user / 1e6)
  m.cpuSystem.set({}, cpu.system / 1e6)
  m.cpuTotal.set({}, (cpu.user + cpu.system) / 1e6)

  const status = procFile('/proc/self/status')
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+) kB$`, 'm').exec(status ?? '')?.[1] ?? NaN) * 1024
  m.resident.set({}, status === undefined ? process.memoryUsage.rss() : kB('VmRSS'))
  m.virtual.set({}, kB('VmSize'))
  m.heap.set({}, kB('VmData'))
  try {
    m.openFds.set({}, readdirSync('/proc/self/fd').length - 1) // less the one readdir itself had open
  } catch {
    m.openFds.set({}, NaN)
  }
  const limit = /^Max open files\s+(\d+|unlimited)/m.exec(procFile('/proc/self/limits') ?? '')?.[1]
  m.maxFds.set({}, limit === undefined ? NaN : limit === 'unlimited' ? Infinity : Number(limit))
}

/** Node's resources, handles, requests, heap and heap spaces. */
function scrapeNodeFigures(m: ProcessMetrics): void {
  const internals = process as unknown as Internals
  countByType(m.resources, process.getActiveResourcesInfo())
  countByType(m.handles, (internals._getActiveHandles?.() ?? []).map(className))
  countByType(m.requests, (internals._getActiveRequests?.() ?? []).map(className))

  const memory = process.memoryUsage()
  m.heapTotal.set({}, memory.heapTotal)
  m.heapUsed.set({}, memory.heapUsed)
  m.external.set({}, memory.external)
  // node:v8 at the first scrape, not at start (loading it costs ~5 ms of start-up)
  for (const space of process.getBuiltinModule('node:v8').getHeapSpaceStatistics()) {
    const name = space.space_name.replace(/_space$/, '')
    m.spaces[0]?.set({ space: name }, space.space_size)
    m.spaces[1]?.set({ space: name }, space.space_used_size)
    m.spaces[2]?.set({ space: name }, space.space_available_size)
  }
}

/**
 * The event loop's figures, none of which needs a timer while the agent is idle:
 * - `nodejs_eventloop_lag_seconds`: measured at the scrape, the time until the loop gets round
 *   to a callback queued then (setImmediate): the work that was waiting.
 * - `nodejs_eventloop_utilization`: the share of time the loop was busy (not waiting for I/O or
 *   timers) since the previous scrape, from performance.eventLoopUtilization(); free to read.
 * - `nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`: the time between the ticks
 *   of a 10 ms timer (as prom-client's monitor measured it: an unhurried loop reads ~0.010), only
 *   while a job runs, since the previous scrape. 0 when no job ran since: a timer running always
 *   would wake the idle agent 100 times a second.
 */
export class EventLoopMetrics {
  // Sampled by a timer of our own, not monitorEventLoopDelay: that one keeps its last tick across
  // disable() and enable(), so the first sample of the next job would be the whole idle time.
  // Made at the first job: the first histogram costs ~2 ms, not to be spent at start-up.
  #delays: RecordableHistogram | undefined
  #sampler: NodeJS.Timeout | undefined
  #lastTick = 0
  #jobs = 0
  /** Since the previous scrape; the first scrape's figure is since the start. */
  #lastUtilization: ReturnType<typeof performance.eventLoopUtilization> | undefined

  constructor(registry: Registry, prefix: string) {
    const lag = registry.gauge(
      `${prefix}nodejs_eventloop_lag_seconds`,
      'Lag of event loop in seconds, measured at the scrape (until a callback queued then ran).',
    )
    const utilization = registry.gauge(
      `${prefix}nodejs_eventloop_utilization`,
      'Share of time the event loop was busy since the previous scrape (0 to 1).',
    )
    const figures: [string, string, (h: RecordableHistogram) => number][] = [
      ['min', 'The minimum recorded event loop delay', (h) => h.min],
      ['max', 'The maximum recorded event loop delay', (h) => h.max],
      ['mean', 'The mean of the recorded event loop delays', (h) => h.mean],
      ['stddev', 'The standard deviation of the recorded event loop delays', (h) => h.stddev],
      ['p50', 'The 50th percentile of the recorded event loop delays', (h) => h.percentile(50)],
      ['p90', 'The 90th percentile of the recorded event loop delays', (h) => h.percentile(90)],
      ['p99', 'The 99th percentile of the recorded event loop delays', (h) => h.percentile(99)],
    ]
    const gauges = figures.map(([name, help, read]) => ({
      gauge: registry.gauge(
        `${prefix}nodejs_eventloop_lag_${name}_seconds`,
        `${help}, sampled every ${DELAY_RESOLUTION_MS} ms while a job runs, since the previous scrape (0 if none ran).`,
      ),
      read,
    }))

    registry.onScrape(async () => {
      const queued = performance.now()
      await new Promise((resolve) => setImmediate(resolve))
      lag.set({}, (performance.now() - queued) / 1000)

      const now = performance.eventLoopUtilization()
      const last = this.#lastUtilization
      utilization.set({}, (last ? performance.eventLoopUtilization(now, last) : now).utilization)
      this.#lastUtilization = now

      const delays = this.#delays
      for (const { gauge, read } of gauges) gauge.set({}, delays && delays.count > 0 ? read(delays) / 1e9 : 0)
      delays?.reset()
    })
  }

  /** A job started: the delay is sampled until every job that started has finished. */
  jobStarted(): void {
    if (this.#jobs++ > 0) return
    const delays = (this.#delays ??= perfHooks().createHistogram())
    this.#lastTick = performance.now()
    this.#sampler = setInterval(() => {
      const now = performance.now()
      delays.record(Math.max(1, Math.round((now - this.#lastTick) * 1e6)))
      this.#lastTick = now
    }, DELAY_RESOLUTION_MS).unref()
  }

  jobFinished(): void {
    if (this.#jobs === 0 || --this.#jobs > 0) return
    this.noJobRuns()
  }

  /** No job runs (the registry says so): the sampler stops, whatever was counted. */
  noJobRuns(): void {
    this.#jobs = 0
    clearInterval(this.#sampler)
    this.#sampler = undefined
  }

  /** True while the delay is being sampled (a timer runs). */
  get sampling(): boolean {
    return this.#sampler !== undefined
  }
}

function procFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1')
  } catch {
    return undefined
  }
}

function className(item: object): string {
  return item.constructor?.name ?? 'Object'
}

/** Sets one gauge per type (types that went away disappear) and the total. */
function countByType(gauges: { types: Gauge<'type'>; total: Gauge }, types: string[]): void {
  const counts = new Map<string, number>()
  for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1)
  gauges.types.reset()
  for (const [type, count] of counts) gauges.types.set({ type }, count)
  gauges.total.set({}, types.length)
}
