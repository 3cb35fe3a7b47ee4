// The progress line of `wait`: how far the job is through its stage table, and which stage runs.
import { STAGE_TABLE } from '../jobs/stage-names.ts'
import type { Kind } from './client.ts'

const WIDTH = 24

/** The stages a job of this kind walks through (transfers only when it uses storage). */
export function stageNames(kind: Kind, skipStorage: boolean): string[] {
  return STAGE_TABLE[kind].filter((s) => !(s.kind === 'transfer' && skipStorage)).map((s) => s.name)
}

/** `[#########---------------] 3/6 backup` (or the final status once the job is done). */
export function progressLine(kind: Kind, body: Record<string, unknown>): string {
  const names = stageNames(kind, body.skip_storage === true)
  const done = body.status !== 'RUNNING'
  const index = names.indexOf(String(body.state))
  const step = done ? names.length : Math.max(0, index)
  const filled = Math.round((step / names.length) * WIDTH)
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}]`
  const where = done ? String(body.status) : `${index + 1}/${names.length} ${String(body.state)}`
  const extra = typeof body.progress === 'number' ? ` ${Math.round(body.progress * 100)}%` : ''
  return `${bar} ${where}${extra}`
}
