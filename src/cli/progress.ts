// The progress line of `wait`: how far the job is through its stage table, which stage runs, and
// how far a transfer or verify read is through the object.
import { STAGE_TABLE } from '../jobs/stage-names.ts'
import type { Kind } from './client.ts'

const WIDTH = 24

/**
 * Stages that run only with a setting the polling body does not show (verify-upload: the
 * agent's verify_after_upload): counted once the body shows one runs or ran, so a backup without
 * it does not look one stage short of its end.
 */
const SHOWN_ONCE_SEEN: Record<string, (body: Record<string, unknown>) => boolean> = {
  'verify-upload': (body) => body.state === 'verify-upload' || body.verification !== undefined,
}

/** The stages a job of this kind walks through, as far as its polling body tells. */
export function stageNames(kind: Kind, body: Record<string, unknown>): string[] {
  const skipStorage = body.skip_storage === true
  return STAGE_TABLE[kind]
    .filter((s) => !(s.kind === 'transfer' && skipStorage))
    .filter((s) => SHOWN_ONCE_SEEN[s.name]?.(body) ?? true)
    .map((s) => s.name)
}

/** `[#########---------------] 3/6 upload 42% (44.0/104.9 MB)` (or the final status once the job is done). */
export function progressLine(kind: Kind, body: Record<string, unknown>): string {
  const names = stageNames(kind, body)
  const done = body.status !== 'RUNNING'
  const index = names.indexOf(String(body.state))
  const step = done ? names.length : Math.max(0, index)
  const filled = Math.round((step / names.length) * WIDTH)
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}]`
  const where = done ? String(body.status) : `${index + 1}/${names.length} ${String(body.state)}`
  return `${bar} ${where}${done ? '' : transferText(body.progress)}`
}

/**
 * The polling body's `progress` ({bytes_done, bytes_total, bytes_per_second}, while an upload,
 * download or verify read runs): ` 42% (44.0/104.9 MB) at 12.5 MB/s`; the bytes alone while the
 * total is unknown (a streamed backup).
 */
export function transferText(progress: unknown): string {
  if (typeof progress !== 'object' || progress === null) return ''
  const { bytes_done: done, bytes_total: total, bytes_per_second: rate } = progress as Record<string, unknown>
  if (typeof done !== 'number' || !Number.isFinite(done)) return ''
  const speed = typeof rate === 'number' && rate > 0 ? ` at ${formatBytes(rate)}/s` : ''
  if (typeof total !== 'number' || !(total > 0)) return ` ${formatBytes(done)}${speed}`
  // Down, so 100% means every byte; clamped, as a total is the storage's word and may be off.
  const percent = Math.min(100, Math.max(0, Math.floor((done / total) * 100)))
  const unit = unitOf(total)
  return ` ${percent}% (${scaled(done, unit)}/${scaled(total, unit)} ${unit.name})${speed}`
}

const UNITS = [
  { name: 'B', size: 1 },
  { name: 'kB', size: 1e3 },
  { name: 'MB', size: 1e6 },
  { name: 'GB', size: 1e9 },
  { name: 'TB', size: 1e12 },
] as const
type Unit = (typeof UNITS)[number]

function unitOf(bytes: number): Unit {
  return UNITS.findLast((u) => bytes >= u.size) ?? UNITS[0]
}

function scaled(bytes: number, unit: Unit): string {
  return unit.size === 1 ? String(Math.round(bytes)) : (bytes / unit.size).toFixed(1)
}

/** `512 B`, `44.0 MB`: decimal units, as storage consoles and `ls -h --si` show sizes. */
export function formatBytes(bytes: number): string {
  const unit = unitOf(bytes)
  return `${scaled(bytes, unit)} ${unit.name}`
}
