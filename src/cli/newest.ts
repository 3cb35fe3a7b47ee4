// `verify --newest`: the newest backup this agent stored at the destination type given, from its
// own job listing (newest first), so a timer can verify last night's backup without knowing its
// file name.
import { type AgentClient, CliError, EXIT, refused } from './client.ts'

/** Listing pages looked through at most (100 jobs each) before giving up. */
const MAX_PAGES = 10

export interface NewestBackup {
  id: string
  filename: string
  /** Where the backup stored it (LOCAL: the folder; S3: the key prefix). */
  filenamePrefix: string
}

/** The newest SUCCEEDED backup to `type` that stored an object (skip_storage backups did not). */
export async function newestBackup(client: AgentClient, type: string): Promise<NewestBackup> {
  let cursor: string | null = null
  for (let page = 0; page < MAX_PAGES; page++) {
    const query = new URLSearchParams({ status: 'SUCCEEDED', limit: '100', ...(cursor ? { cursor } : {}) })
    const reply = await client.request('GET', `/backup?${query}`)
    if (reply.status !== 200) throw refused(reply)
    for (const job of reply.body.jobs as Record<string, any>[]) {
      if (job.type !== type || typeof job.filename !== 'string' || job.filename === '') continue
      // The listing has neither the prefix nor skip_storage: the polling body has both.
      const { body } = await client.poll(job.id, 'backup')
      if (body.skip_storage === true) continue
      return { id: job.id, filename: body.filename, filenamePrefix: typeof body.filenamePrefix === 'string' ? body.filenamePrefix : '' }
    }
    cursor = reply.body.next_cursor
    if (!cursor) break
  }
  throw new CliError(
    `no SUCCEEDED ${type} backup with a stored object in this agent's listing (its newest ${MAX_PAGES * 100} jobs)`,
    EXIT.failed,
  )
}
