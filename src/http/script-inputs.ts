// Bounds on what a request hands to the scripts (SPEC §3). The kernel refuses a single argv or
// environment string over 128 KiB and the whole past about 2 MiB (spawn E2BIG): a request past
// these limits is a 400 at the trigger, never a job whose every stage fails. Sizes count UTF-8
// bytes, as the kernel and the file system do.
import { BACKUP_FILENAME_MAX_BYTES } from '../jobs/file-base.ts'
import type { Destination, JobRequest } from '../jobs/request.ts'

/** Each string that reaches a script's argv or environment. */
export const SCRIPT_STRING_MAX_BYTES = 32 * 1024
/** Everything a script receives from one request, parameter names included. */
export const SCRIPT_INPUTS_MAX_BYTES = 512 * 1024
export const MAX_PARAMETERS = 256
/**
 * A restore filename: the names derived from it (`.<name>.download`, …) stay within NAME_MAX, 255.
 * The same bound as the names a backup reports, so every backup can be restored.
 */
export const FILENAME_MAX_BYTES = BACKUP_FILENAME_MAX_BYTES
/**
 * filenamePrefix: an S3 key is at most 1024 bytes, and prefix plus a 200-byte name plus an
 * extension must fit, or the upload fails after the scripts ran. LOCAL makes folders of it.
 */
export const FILENAME_PREFIX_MAX_BYTES = 512
/** A folder LOCAL makes from filenamePrefix: NAME_MAX. */
export const FOLDER_NAME_MAX_BYTES = 255

export const utf8Bytes = (text: string): number => Buffer.byteLength(text, 'utf8')

/** The storage fields the scripts get with skipStorage (src/scripts/environment.ts), by request field. */
function storageInputs(d: Destination): [field: string, value: string][] {
  if (d.type === 'S3') {
    return [
      ['bucket', d.bucket],
      ['endpoint', d.endpoint],
      ['region', d.region ?? ''],
      ['authKey', d.authKey],
      ['authSecret', d.authSecret],
    ]
  }
  if (d.type === 'SWIFT') {
    return [
      ['authUrl', d.authUrl],
      ['domain', d.domain],
      ['project_name', d.projectName],
      ['container_name', d.containerName],
      ['username', d.username],
      ['password', d.password],
    ]
  }
  return []
}

/** Every string of the request that a script receives (argv or environment), by request field. */
function scriptInputs(request: JobRequest): [field: string, value: string][] {
  const { kind, destination: d, database: db } = request
  return [
    ['id', request.id],
    ['encryption_key', request.encryptionKey],
    ...(['host', 'username', 'password', 'database'] as const).map((f): [string, string] => [`${kind}.${f}`, db[f]]),
    ...[...storageInputs(d), ['filenamePrefix', d.filenamePrefix], ['filename', d.filename]].map(([f, v]): [string, string] => [
      `destination.${f}`,
      v as string,
    ]),
    ...Object.entries(db.parameters).map(([name, value]): [string, string] => [`${kind}.parameters.${name}`, value]),
  ]
}

/** The limits of SPEC §3 a request breaks, one message per field. */
export function scriptInputProblems(request: JobRequest): string[] {
  const problems: string[] = []
  let total = 0
  for (const [field, value] of scriptInputs(request)) {
    const bytes = utf8Bytes(value)
    total += bytes
    if (bytes > SCRIPT_STRING_MAX_BYTES) {
      problems.push(
        `${field} is ${bytes} bytes: a string passed to the scripts is at most ${SCRIPT_STRING_MAX_BYTES} bytes (32 KiB in UTF-8)`,
      )
    }
  }
  for (const name of Object.keys(request.database.parameters)) total += utf8Bytes(name)
  if (total > SCRIPT_INPUTS_MAX_BYTES) {
    problems.push(
      `${request.kind}: the scripts would receive ${total} bytes from this request (fields, parameter names and values); at most ${SCRIPT_INPUTS_MAX_BYTES} (512 KiB in UTF-8)`,
    )
  }
  return problems
}
