// A job's working directory and the files the agent writes into it: never readable by others.
// Directories are 0750 and files 0640; with job_group they belong to that group, so scripts that
// drop privileges to the database user (a member of it) can still read a restore file or write
// their dump. The modes are set explicitly (chmod), whatever the process umask.
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync } from 'node:fs'
import { chmod, chown, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { JobError } from '../errors.ts'

export const JOB_DIRECTORY_MODE = 0o750
export const JOB_FILE_MODE = 0o640

/** Owner unchanged in chown. */
const SAME_OWNER = -1

/**
 * directory_backup or directory_restore: created 0750 when missing, and given job_group (the
 * group must be able to pass through it to reach a job directory). An existing directory keeps
 * the mode the operator gave it.
 */
export async function prepareJobRoot(directory: string, gid: number | undefined): Promise<void> {
  await mkdir(directory, { recursive: true, mode: JOB_DIRECTORY_MODE })
  if (gid !== undefined) await chown(directory, SAME_OWNER, gid)
}

/**
 * Creates the job's directory (or takes over an existing one) with the job mode and group, and
 * empties it when `empty`: files left by an earlier job with the same id (after a DELETE) must
 * not be mistaken for this job's backup.
 */
export async function prepareJobDirectory(directory: string, options: { empty: boolean; gid: number | undefined }): Promise<void> {
  try {
    // Synchronous metadata calls (as the script checks in src/scripts/safety.ts): microseconds each
    // on the agent's own directory, where each thread-pool round trip cost ~1-2 ms on a busy
    // machine, on every job's path. Emptying stays asynchronous: it may remove a large tree.
    // mkdirSync answers undefined when the directory was there already, a path when it created it.
    const created = mkdirSync(directory, { recursive: true, mode: JOB_DIRECTORY_MODE })
    // A symlink planted under the job's name would send the agent's chmod, chown and rm elsewhere.
    const info = lstatSync(directory)
    if (!info.isDirectory()) throw new Error('it is not a directory (a symlink?)')
    chmodSync(directory, JOB_DIRECTORY_MODE)
    if (options.gid !== undefined) chownSync(directory, SAME_OWNER, options.gid)
    // A directory this call just created is empty: nothing to list.
    if (options.empty && created === undefined) {
      for (const name of readdirSync(directory)) await rm(join(directory, name), { recursive: true, force: true })
    }
  } catch (error) {
    throw new JobError(`cannot prepare the job directory ${directory}: ${(error as Error).message}`, { cause: error })
  }
}

/** Gives a file the agent wrote the job file mode and group. */
export async function protectJobFile(path: string, gid: number | undefined): Promise<void> {
  await chmod(path, JOB_FILE_MODE)
  if (gid !== undefined) await chown(path, SAME_OWNER, gid)
}

/**
 * Before a cleanup or unlock script: the job directory is its working directory, and no script
 * can be started in a directory that is gone (an earlier script may have removed it). It is made
 * again, empty, so that unlock still runs.
 */
export function recreateMissingJobDirectory(directory: string, gid: number | undefined): void {
  try {
    if (mkdirSync(directory, { recursive: true, mode: JOB_DIRECTORY_MODE }) === undefined) return
    chmodSync(directory, JOB_DIRECTORY_MODE)
    if (gid !== undefined) chownSync(directory, SAME_OWNER, gid)
  } catch {
    // the script's start then fails and its message says why
  }
}
