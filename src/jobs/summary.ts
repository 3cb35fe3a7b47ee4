// A job's line in a listing (GET /backup, GET /restore): the polling body without the script
// output, so a page of many jobs stays small. Built from the polling body, the one source of truth.

export interface JobSummary {
  id: string
  status: string
  state: string
  type: string
  filename: string
  filesize: number
  start_time: string
  end_time: string
  execution_time_ms: number
  error_message?: string
}

export function jobSummary(id: string, body: Record<string, unknown>): JobSummary {
  const summary: JobSummary = {
    id,
    status: String(body.status ?? 'RUNNING'),
    state: String(body.state ?? 'starting'),
    type: String(body.type ?? ''),
    filename: String(body.filename ?? ''),
    filesize: Number((body.filesize as { size?: number } | undefined)?.size ?? 0),
    start_time: String(body.start_time ?? ''),
    end_time: String(body.end_time ?? ''),
    execution_time_ms: Number(body.execution_time_ms ?? 0),
  }
  if (typeof body.error_message === 'string' && body.error_message !== '') summary.error_message = body.error_message
  return summary
}
