// The query of a listing (GET /backup, GET /restore): status filter, page size and the opaque
// cursor a previous page returned.
import type { JobStatus } from '../jobs/job.ts'
import type { JobCursor } from '../jobs/registry.ts'
import type { Checked } from './trigger.ts'

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000
const STATUSES: readonly JobStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED']

export interface ListingQuery {
  status: JobStatus | undefined
  limit: number
  after: JobCursor | undefined
}

export function encodeCursor(cursor: JobCursor): string {
  return Buffer.from(JSON.stringify([cursor.startedAt, cursor.id])).toString('base64url')
}

function decodeCursor(text: string): JobCursor | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return { startedAt: value[0] as number, id: value[1] }
    }
  } catch {
    // answered below
  }
  return undefined
}

export function parseListingQuery(query: Record<string, unknown>): Checked<ListingQuery> {
  const errors: string[] = []
  const one = (name: string): string | undefined => {
    const value = query[name]
    if (Array.isArray(value)) {
      errors.push(`${name} may be given once`)
      return undefined
    }
    return typeof value === 'string' ? value : undefined
  }
  const statusText = one('status')
  const status = statusText === undefined ? undefined : STATUSES.find((s) => s === statusText.toUpperCase())
  if (statusText !== undefined && status === undefined) errors.push(`status must be one of ${STATUSES.join(', ')}`)
  const limitText = one('limit')
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText)
  if (!/^\d+$/.test(limitText ?? '1') || limit < 1 || limit > MAX_LIMIT) errors.push(`limit must be a whole number from 1 to ${MAX_LIMIT}`)
  const cursorText = one('cursor')
  const after = cursorText === undefined || cursorText === '' ? undefined : decodeCursor(cursorText)
  if (cursorText && after === undefined) errors.push('cursor is not one this agent gave out')
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: { status, limit, after } }
}
