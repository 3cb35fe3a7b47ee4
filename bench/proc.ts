// What an agent costs the machine, read from /proc from outside: its whole process tree (every
// process whose parent chain reaches the agent's pid, so a helper process counts), the resident
// memory of that tree, and its threads' context switches and CPU ticks.
import { readdirSync, readFileSync } from 'node:fs'

interface ProcessInfo {
  pid: number
  ppid: number
}

const readOrUndefined = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined // the process (or thread) ended while it was looked at
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).split(' ')
}

function allProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = readOrUndefined(`/proc/${name}/stat`)
    if (stat === undefined) continue
    out.push({ pid: Number(name), ppid: Number(statFields(stat)[1]) })
  }
  return out
}

/** `pid` and every process below it, parents before their children. */
export function processTree(pid: number): ProcessInfo[] {
  const children = new Map<number, ProcessInfo[]>()
  let root: ProcessInfo | undefined
  for (const p of allProcesses()) {
    if (p.pid === pid) root = p
    const list = children.get(p.ppid)
    if (list) list.push(p)
    else children.set(p.ppid, [p])
  }
  if (!root) return []
  const tree = [root]
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get((tree[i] as ProcessInfo).pid) ?? []))
  return tree
}

const cmdline = (pid: number) => readOrUndefined(`/proc/${pid}/cmdline`)

function statusKb(pid: number, field: string): number | undefined {
  const status = readOrUndefined(`/proc/${pid}/status`)
  const kb = status === undefined ? undefined : new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm').exec(status)?.[1]
  return kb === undefined ? undefined : Number(kb)
}

export interface TreeRss {
  /** Summed VmRSS of the counted processes. */
  bytes: number
  /** The processes counted, with their VmRSS in bytes and command line. */
  counted: { pid: number; bytes: number; command: string }[]
  /** Processes left out: lifecycle scripts (and what they started), children not yet exec'd. */
  excluded: number
}

/**
 * VmRSS summed over the agent's process tree. Two kinds of process are left out:
 * - a lifecycle script and everything below it (any argument inside `scriptsDir`): that is the
 *   database's dump tool, not the agent (the stream-mode generator is itself a ~45 MB Node);
 * - a child whose command line is still its parent's: forked (or vforked) and not yet exec'd, so
 *   its resident pages are the parent's, already counted.
 */
export function treeRss(pid: number, scriptsDir?: string): TreeRss {
  const counted: TreeRss['counted'] = []
  const skip = new Set<number>()
  let excluded = 0
  const lines = new Map<number, string | undefined>()
  for (const { pid: p, ppid } of processTree(pid)) {
    const line = cmdline(p)
    lines.set(p, line)
    const parent = p === pid ? undefined : ppid
    if (parent !== undefined && skip.has(parent)) {
      skip.add(p)
      excluded++
      continue
    }
    if (p !== pid && scriptsDir && line?.split('\0').some((arg) => arg.startsWith(`${scriptsDir}/`))) {
      skip.add(p)
      excluded++
      continue
    }
    if (parent !== undefined && line !== undefined && line === lines.get(parent)) {
      excluded++
      continue
    }
    const kb = statusKb(p, 'VmRSS')
    if (kb !== undefined) counted.push({ pid: p, bytes: kb * 1024, command: (line ?? '').split('\0').join(' ').trim().slice(0, 120) })
  }
  return { bytes: counted.reduce((sum, c) => sum + c.bytes, 0), counted, excluded }
}

/** Peak resident set (VmHWM) of one process, in bytes; 0 when it is gone. */
export function vmHwm(pid: number): number {
  return (statusKb(pid, 'VmHWM') ?? 0) * 1024
}

export interface Activity {
  /** Per thread (pid:tid): voluntary + nonvoluntary context switches, and utime + stime in clock ticks. */
  threads: Map<string, { switches: number; ticks: number }>
}

/** Every thread of every process of the tree: its context switches and CPU ticks so far. */
export function treeActivity(pid: number): Activity {
  const threads = new Map<string, { switches: number; ticks: number }>()
  for (const { pid: p } of processTree(pid)) {
    let tids: string[]
    try {
      tids = readdirSync(`/proc/${p}/task`)
    } catch {
      continue
    }
    for (const tid of tids) {
      const status = readOrUndefined(`/proc/${p}/task/${tid}/status`)
      const stat = readOrUndefined(`/proc/${p}/task/${tid}/stat`)
      if (status === undefined || stat === undefined) continue
      const counter = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? 0)
      const fields = statFields(stat) // utime and stime are fields 14 and 15 of stat, 12 and 13 here
      threads.set(`${p}:${tid}`, {
        switches: counter('voluntary_ctxt_switches') + counter('nonvoluntary_ctxt_switches'),
        ticks: Number(fields[11]) + Number(fields[12]),
      })
    }
  }
  return { threads }
}

/**
 * What the tree's threads did between two readings: summed per thread (a thread that started
 * in between counts from zero; one that ended in between is not seen, which at idle does not
 * happen: the counts name the threads).
 */
export function activityBetween(
  before: Activity,
  after: Activity,
): { switches: number; ticks: number; threads: number; started: number; ended: number } {
  let switches = 0
  let ticks = 0
  let started = 0
  for (const [key, end] of after.threads) {
    const start = before.threads.get(key)
    if (!start) started++
    switches += end.switches - (start?.switches ?? 0)
    ticks += end.ticks - (start?.ticks ?? 0)
  }
  const ended = [...before.threads.keys()].filter((k) => !after.threads.has(k)).length
  return { switches, ticks, threads: after.threads.size, started, ended }
}

/**
 * The tree's summed VmRSS sampled every `everyMs` while a job runs (the main process's VmHWM
 * catches its own peak between samples; a sample catches the helpers' share). `atPeak`: the
 * processes the largest sample counted, with their RSS in MB and when it was taken (ms after the
 * start), to tell which moment of a job makes the peak.
 */
export function sampleTreeRss(
  pid: number,
  scriptsDir: string,
  everyMs = 50,
): {
  stop: () => { maxBytes: number; samples: number; maxProcesses: number; helpers: string[]; atPeak: { ms: number; processes: string[] } }
} {
  let maxBytes = 0
  let samples = 0
  let maxProcesses = 0
  let atPeak = { ms: 0, processes: [] as string[] }
  const started = performance.now()
  const helpers = new Set<string>()
  const take = () => {
    const rss = treeRss(pid, scriptsDir)
    samples++
    if (rss.bytes > maxBytes) {
      maxBytes = rss.bytes
      atPeak = {
        ms: Math.round(performance.now() - started),
        processes: rss.counted.map((c) => `${(c.bytes / 1e6).toFixed(1)} MB ${c.command.slice(0, 60)}`),
      }
    }
    if (rss.counted.length > maxProcesses) maxProcesses = rss.counted.length
    for (const c of rss.counted.slice(1)) helpers.add(c.command)
  }
  take()
  const timer = setInterval(take, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      take()
      return { maxBytes, samples, maxProcesses, helpers: [...helpers], atPeak }
    },
  }
}
