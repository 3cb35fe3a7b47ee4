// LOCAL's storage hygiene (Storage.collectGarbage): metadata files (`.<name>.meta.json`) whose
// object is gone (removed by hand, or by a retention that deletes the object only), and what an
// interrupted upload left whose recovery never ran (its record lost): object data
// (`.<name>.partial-<16 hex>`, `.<name>.partial` from older agents) and metadata writes
// (`.<name>.meta.json.<16 hex>`), once older than the grace.
// Only the destination's folder is read: the agent stores a destination's objects there.
// Nothing is followed: entries are examined with lstat, a link or anything but a regular file is
// left alone, and a removal unlinks the name, never what a link points to.
import { randomBytes } from 'node:crypto'
import type { Stats } from 'node:fs'
import { link, lstat, opendir, rename, unlink, type FileHandle } from 'node:fs/promises'
import type { GarbageOptions, Reclaimed } from '../storage.ts'
import { at } from './names.ts'

/** Directory entries per listing page (GarbageOptions.maxPages counts these). */
export const ENTRIES_PER_PAGE = 1000
/** An object's metadata; the object's name is the group (never one of the agent's own `.` names). */
const METADATA = /^\.([^.].*)\.meta\.json$/
/** A write that never reached its rename: object data (storage.ts: partialName) or metadata (metadataPartialName). */
const INTERRUPTED_WRITE = /^\.[^.].*(\.partial-[0-9a-f]{16}|\.partial|\.meta\.json\.[0-9a-f]{16})$/

/** A garbage candidate: its entry name and, for metadata, its object's. */
interface Candidate {
  name: string
  object: string | undefined
}

/**
 * Reads the folder held open in pages of ENTRIES_PER_PAGE entries and removes the garbage among
 * them, until its end or the bounds (the rest waits for the next backup). `objectPrefix` is the
 * part of the destination's prefix after its last folder (empty for a prefix ending in `/`): only
 * metadata of objects named so is the destination's. Never throws.
 */
export async function removeOrphanedMetadata(
  folder: FileHandle,
  objectPrefix: string,
  options: GarbageOptions,
  where: string,
): Promise<Reclaimed> {
  const reclaimed: Reclaimed = { objects: 0, bytes: 0, problems: [] }
  const cutoff = Date.now() - options.graceMs
  let pages = options.maxPages
  let read = 0
  try {
    // Closed by the loop when it ends or breaks.
    for await (const entry of await opendir(`/proc/self/fd/${folder.fd}`, { bufferSize: 128 })) {
      const bound = read++ % ENTRIES_PER_PAGE === 0 && pages-- <= 0 ? `its ${options.maxPages} listing pages` : outOfTime(options)
      if (bound) {
        reclaimed.problems.push(`the clean-up of metadata files in ${where} stopped at ${bound}; what is left waits for the next backup`)
        break
      }
      const candidate = garbageCandidate(entry.name, objectPrefix)
      if (!candidate) continue
      try {
        const bytes = await removeIfGarbage(folder, candidate, cutoff)
        if (bytes === undefined) continue
        reclaimed.objects++
        reclaimed.bytes += bytes
      } catch (error) {
        reclaimed.problems.push(`removal of the leftover file ${candidate.name} in ${where} failed: ${(error as Error).message}`)
      }
    }
  } catch (error) {
    reclaimed.problems.push(`listing of ${where} for orphaned metadata files failed: ${(error as Error).message}`)
  }
  return reclaimed
}

function outOfTime(options: GarbageOptions): string | undefined {
  if (options.signal?.aborted) return 'a cancel'
  return Date.now() >= options.deadline ? 'its deadline' : undefined
}

function garbageCandidate(name: string, objectPrefix: string): Candidate | undefined {
  const object = METADATA.exec(name)?.[1]
  if (object !== undefined) return object.startsWith(objectPrefix) ? { name, object } : undefined
  const interrupted = INTERRUPTED_WRITE.test(name) && name.startsWith(`.${objectPrefix}`)
  return interrupted ? { name, object: undefined } : undefined
}

/**
 * Removes the candidate if it is a regular file older than `cutoff` whose object (for metadata)
 * does not exist; its size when it did. An orphan is first moved aside and removed only if it is
 * still the file examined: an upload of its object may have written the metadata anew meanwhile,
 * and that one is put back (by link: never over a newer one still).
 */
async function removeIfGarbage(folder: FileHandle, { name, object }: Candidate, cutoff: number): Promise<number | undefined> {
  const examined = await lstatIfThere(at(folder, name))
  if (!examined?.isFile() || examined.mtimeMs > cutoff) return undefined
  if (object === undefined) {
    await unlink(at(folder, name))
    return examined.size
  }
  if ((await lstatIfThere(at(folder, object))) !== undefined) return undefined
  const aside = `${name}.${randomBytes(8).toString('hex')}`
  await rename(at(folder, name), at(folder, aside))
  const moved = await lstat(at(folder, aside))
  if (moved.ino !== examined.ino || moved.dev !== examined.dev) {
    await link(at(folder, aside), at(folder, name)).catch(() => {})
    await unlink(at(folder, aside))
    return undefined
  }
  await unlink(at(folder, aside))
  return examined.size
}

/** The entry's own status (a link's, not its target's); undefined when there is no such entry. */
async function lstatIfThere(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined
    throw error
  }
}
