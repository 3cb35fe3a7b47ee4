// S3's storage hygiene (Storage.collectGarbage): multipart uploads under the destination's prefix
// that were never completed or aborted (an agent that crashed between attempts left them, and S3
// bills their parts like data) are aborted once they are older than the grace. Completed objects
// are never addressed: an abort names an upload id, and S3 only lists uploads still in progress.
import type { GarbageOptions, Reclaimed } from '../storage.ts'
import type { S3Client } from './client.ts'
import { S3Error } from './errors.ts'
import type { UploadListing } from './xml.ts'

export type GarbageClient = Pick<S3Client, 'listMultipartUploadsPage' | 'listPartsPage' | 'abortMultipartUpload'>

/** Turns a failure into a message an operator can act on (S3Storage's explanations). */
export type Explain = (error: unknown, what: string) => string

type Upload = UploadListing['uploads'][number]

/** What the pass may still spend: listing requests (ListMultipartUploads and ListParts pages alike) and time. */
class Budget {
  #pages: number
  readonly #deadline: number
  /** The job's signal, or the deadline: a request still in flight then is given up. */
  readonly signal: AbortSignal

  constructor(options: GarbageOptions) {
    this.#pages = options.maxPages
    this.#deadline = options.deadline
    const timeout = AbortSignal.timeout(Math.max(0, options.deadline - Date.now()))
    this.signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  }

  get timeLeft(): boolean {
    return !this.signal.aborted && Date.now() < this.#deadline
  }

  /** Takes one listing page, if there is one left and time to send it. */
  page(): boolean {
    if (this.#pages <= 0 || !this.timeLeft) return false
    this.#pages--
    return true
  }
}

/**
 * Lists the uploads under `prefix` a page at a time and aborts those initiated more than
 * `graceMs` ago, until the listing ends or the budget does (the rest waits for the next backup).
 * The server's Initiated time is compared with our clock: the grace is hours, clock skew seconds.
 */
export async function abortStaleUploads(
  client: GarbageClient,
  prefix: string,
  options: GarbageOptions,
  explain: Explain,
): Promise<Reclaimed> {
  const reclaimed: Reclaimed = { objects: 0, bytes: 0, problems: [] }
  const budget = new Budget(options)
  const call = { signal: budget.signal }
  const undated = new Set<string>()
  let marker: UploadListing['next']
  for (;;) {
    if (!budget.page()) {
      reclaimed.problems.push(stopped(budget, options, prefix))
      break
    }
    let listing: UploadListing
    try {
      listing = await client.listMultipartUploadsPage(prefix, marker, call)
    } catch (error) {
      reclaimed.problems.push(
        budget.timeLeft
          ? explain(error, `listing of the unfinished uploads under ${prefix || 'the bucket'}`)
          : stopped(budget, options, prefix),
      )
      break
    }
    for (const upload of listing.uploads) {
      // The prefix again: a server that ignored it must not lead us to another destination's uploads.
      if (!upload.key.startsWith(prefix) || !budget.timeLeft) continue
      const initiated = Date.parse(upload.initiated ?? '')
      if (Number.isNaN(initiated)) undated.add(upload.key)
      else if (Date.now() - initiated >= options.graceMs) await abortUpload(client, upload, budget, reclaimed, explain)
    }
    if (listing.next === undefined) break
    marker = listing.next
  }
  if (undated.size > 0) {
    reclaimed.problems.push(
      `${undated.size} unfinished upload(s) under ${prefix || 'the bucket'} have no Initiated time (first: ${[...undated][0]}); left alone, their age is unknown`,
    )
  }
  return reclaimed
}

/**
 * Counts the upload's bytes (ListParts, each page taken from the budget: stale uploads are rare,
 * so this costs little) and aborts it. Out of pages, the upload is still aborted and only the
 * bytes seen are counted. An upload gone meanwhile (NoSuchUpload) is no problem and not counted.
 */
async function abortUpload(client: GarbageClient, upload: Upload, budget: Budget, reclaimed: Reclaimed, explain: Explain): Promise<void> {
  const call = { signal: budget.signal }
  let bytes = 0
  try {
    for (let marker: string | undefined, first = true; (first || marker !== undefined) && budget.page(); first = false) {
      const parts = await client.listPartsPage(upload.key, upload.uploadId, marker, call)
      bytes += parts.bytes
      marker = parts.next
    }
    await client.abortMultipartUpload(upload.key, upload.uploadId, call)
  } catch (error) {
    if (error instanceof S3Error && error.code === 'NoSuchUpload') return
    if (budget.timeLeft) reclaimed.problems.push(explain(error, `abort of the unfinished upload ${upload.uploadId} of ${upload.key}`))
    return
  }
  reclaimed.objects++
  reclaimed.bytes += bytes
}

/** Why the pass stopped before the listing's end. */
function stopped(budget: Budget, options: GarbageOptions, prefix: string): string {
  const bound = budget.timeLeft ? `its ${options.maxPages} listing pages` : options.signal?.aborted ? 'a cancel' : 'its deadline'
  return `the clean-up of unfinished uploads under ${prefix || 'the bucket'} stopped at ${bound}; what is left waits for the next backup`
}
