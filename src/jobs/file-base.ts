// The generated backup name `YYYY_MM_DD_HH_MM_<host>_<database>` (SPEC §5), which scripts use as
// file_name_without_type and the agent as the object name when a script leaves none.
import { crypto } from '../util/builtins.ts'
import { isStreamedObject, STREAM_SUFFIX } from '../integrity/format.ts'
import { utcFileStamp } from '../util/time.ts'

/** Characters allowed in a generated file name; everything else becomes `_`. */
const UNSAFE_NAME_CHARS = /[^A-Za-z0-9._-]/g
/**
 * The longest name a backup may report, in UTF-8 bytes: the most a restore accepts as
 * `destination.filename` (src/http/script-inputs.ts), so the manager can always send it back.
 */
export const BACKUP_FILENAME_MAX_BYTES = 200
/** Room left after a generated base for the extension the script adds (`.sql.gz.enc`, `.osb`). */
const EXTENSION_ROOM_BYTES = 32
/** The longest generated base, in bytes (all ASCII). */
export const FILE_BASE_MAX_BYTES = BACKUP_FILENAME_MAX_BYTES - EXTENSION_ROOM_BYTES
/** `_` and 12 hex digits of SHA-256 replace the end of a base that is too long. */
const HASH_HEX_DIGITS = 12

export function generatedFileBase(host: string, database: string, now: Date): string {
  const full = `${utcFileStamp(now)}_${host.replace(UNSAFE_NAME_CHARS, '_')}_${database.replace(UNSAFE_NAME_CHARS, '_')}`
  if (full.length <= FILE_BASE_MAX_BYTES) return full
  // Deterministic, and distinct for different long names: a prefix, then a hash of the whole name.
  const hash = crypto().createHash('sha256').update(full).digest('hex').slice(0, HASH_HEX_DIGITS)
  return `${full.slice(0, FILE_BASE_MAX_BYTES - HASH_HEX_DIGITS - 1)}_${hash}`
}

/**
 * Why a restore filename cannot be used, or undefined (also checked on the name a backup reports,
 * which the manager sends back). The agent writes the download under this
 * name plus a few characters (`.<name>.download`), and a `.osb` object decodes to the name
 * without `.osb`: both must be plain names within NAME_MAX.
 */
export function restoreFilenameProblem(filename: string): string | undefined {
  if (filename.includes('/') || filename === '.' || filename === '..') return 'must be a plain file name (no /, not . or ..)'
  const bytes = Buffer.byteLength(filename)
  if (bytes > BACKUP_FILENAME_MAX_BYTES)
    return `is ${bytes} bytes: a restore filename is at most ${BACKUP_FILENAME_MAX_BYTES} bytes in UTF-8`
  const decoded = isStreamedObject(filename) ? filename.slice(0, -STREAM_SUFFIX.length) : undefined
  if (decoded === '' || decoded === '.' || decoded === '..')
    return `must not be ${JSON.stringify(filename)}: a ${STREAM_SUFFIX} object decodes to the name without ${STREAM_SUFFIX}, which must be a plain file name`
  return undefined
}
