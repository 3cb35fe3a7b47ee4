// Following a job to its end (`wait`, and `backup`/`restore`/`verify` with --wait): the progress
// line while it runs, then what it did; the exit code says how it ended.
import { type AgentClient, CliError, EXIT, type Kind } from './client.ts'
import { progressLine } from './progress.ts'

export interface Io {
  out: (text: string) => void
  err: (text: string) => void
  /** stderr is a terminal: draw the progress line in place. */
  tty: boolean
  env: Record<string, string | undefined>
  cwd: string
}

export interface FollowOptions {
  intervalMs: number
  /** Give up (exit 1) after this many milliseconds; Infinity: never. */
  timeoutMs: number
  json: boolean
}

/**
 * Not on a terminal (a log, the journal of a timer): a line per stage, and while one stage runs
 * a progress line at most this often, not one per poll.
 */
const LOG_EVERY_MS = 30_000

/** Polls until the job ends, showing its progress; the exit code says how it ended. */
export async function waitFor(client: AgentClient, id: string, kind: Kind | undefined, options: FollowOptions, io: Io): Promise<number> {
  const deadline = Date.now() + options.timeoutMs
  let last = { line: '', stage: '', at: 0 }
  for (;;) {
    const polled = await client.poll(id, kind)
    kind = polled.kind
    const body = polled.body
    const line = progressLine(kind, body)
    const stage = `${body.status} ${body.state}`
    if (io.tty) {
      // In place on a terminal.
      if (line !== last.line) io.err(`\r\x1b[2K${kind} ${id} ${line}${body.status === 'RUNNING' ? '' : '\n'}`)
      last = { line, stage, at: Date.now() }
    } else if (!options.json && line !== last.line && (stage !== last.stage || Date.now() - last.at >= LOG_EVERY_MS)) {
      io.err(`${kind} ${id} ${line}\n`)
      last = { line, stage, at: Date.now() }
    }
    if (body.status !== 'RUNNING') {
      io.out(options.json ? JSON.stringify(body) : describeJob(kind, body))
      return body.status === 'SUCCEEDED' ? EXIT.ok : EXIT.failed
    }
    if (Date.now() > deadline) throw new CliError(`${kind} ${id} is still running (state ${body.state}) after --timeout`, EXIT.failed)
    await new Promise((r) => setTimeout(r, options.intervalMs))
  }
}

export function describeJob(kind: Kind, b: Record<string, any>): string {
  const lines = [
    `${kind} ${b.status}${b.status === 'RUNNING' ? ` (stage ${b.state})` : ''}: ${b.message}`,
    ...(b.error_message ? [`error: ${b.error_message}`] : []),
    `destination: ${b.type}${b.filenamePrefix ? ` ${b.filenamePrefix}` : ''}`,
    ...(b.filename ? [`file: ${b.filename} (${b.filesize?.size ?? 0} bytes)`] : []),
    ...verificationLines(b),
    `started: ${b.start_time}${b.end_time ? `, ended: ${b.end_time} (${b.execution_time_ms} ms)` : ''}`,
  ]
  return lines.join('\n')
}

/** What a verify read found (a verify job, or a backup with verify_after_upload). */
export function verificationLines(b: Record<string, any>): string[] {
  const v = b.verification
  if (typeof v !== 'object' || v === null) return []
  const lines: string[] = []
  if (v.format === 'osb') {
    const frames = v.frames_authenticated === null ? 'frames not opened (no key)' : `${v.frames_authenticated} frames authenticated`
    const decoded = typeof v.decoded_bytes === 'number' ? `, ${v.decoded_bytes} bytes decoded` : ''
    lines.push(
      `format: .osb version ${v.format_version ?? '?'}, compression ${v.compression ?? '?'}, encryption ${v.encryption ?? '?'}: ${frames}${decoded}`,
    )
  }
  const sha = b.checksum?.value
  if (v.failure) {
    const where = [
      v.failure.offset !== null ? `at byte ${v.failure.offset}` : '',
      v.failure.frame !== null ? `frame ${v.failure.frame}` : '',
    ]
    lines.push(`failed check: ${v.failure.check}${where.some(Boolean) ? ` (${where.filter(Boolean).join(', ')})` : ''}`)
  } else if (b.status === 'SUCCEEDED') {
    lines.push(
      b.checksum_verified === true
        ? `verified: ${v.bytes_read} bytes read, SHA-256 ${sha} matches`
        : `read: ${v.bytes_read} bytes, but no stored SHA-256 to check them against (not verified)`,
    )
  }
  return lines
}
