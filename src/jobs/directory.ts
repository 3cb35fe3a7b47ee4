// A job's working directory and the files the agent writes into it: never readable by others.
// Directories are 0750 and files 0640; with job_group they belong to that group, so scripts that
// drop privileges to the database user (a member of it) can still read a restore file or write
// their dump. The modes are set explicitly, whatever the process umask.
//
// Nothing here follows a symlink: the job directory is opened with O_NOFOLLOW and changed through
// that handle, its entries are reached through the handle (/proc/self/fd/<fd>/<name>, Linux's
// openat), and the agent's own files are created exclusively (O_EXCL|O_NOFOLLOW) with their mode
// and group set on the open file. Scripts run as root in this directory and may chown it to the
// database user: anything may be planted there.
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync } from 'node:fs'
import { chown, mkdir, open, readdir, rmdir, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../config.ts'
import type { JobKind } from './request.ts'
import { JobError } from '../errors.ts'

export const JOB_DIRECTORY_MODE = 0o750
export const JOB_FILE_MODE = 0o640

/** Owner unchanged in chown. */
const SAME_OWNER = -1

/** A new file: created here or not at all, never through a link. */
export const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

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
 * What to do with a job directory that exists already (an earlier job with the same id left it):
 * - empty: remove its entries (a backup: files left there must not be taken for this job's
 *   backup; a restore with allowed_to_delete_files=true)
 * - refuse: fail the job (a restore with allowed_to_delete_files=false: what is there is not
 *   the agent's to delete, and anything planted there could redirect what the agent writes)
 */
export type ExistingDirectory = 'empty' | 'refuse'

/**
 * The job directory the agent prepared, held open for the whole job. A script runs as root in it
 * and may rename or remove it and leave a symlink under its name (to /etc, say): the agent's own
 * reads and writes (the backup file it uploads, a download, the stream pipes) go through the held
 * descriptor, never through the name again, and fail when the name no longer leads to it.
 */
export interface JobDirectory {
  /** The name scripts get (their working directory), as configured. */
  path: string
  /**
   * The directory itself, whatever its name has become: /proc/<agent pid>/fd/<fd> (Linux's
   * openat; the agent's pid rather than `self`, so that a command the agent runs, mkfifo,
   * reaches it too). Checked first: throws when the name was replaced.
   */
  pinned: () => string
  /**
   * Where a script runs: for lock, check and the main script the name, checked to lead to the
   * held directory (a script there must not be sent elsewhere); for cleanup and unlock (which must
   * run) the name while it is a real directory (made again when it was gone, see
   * recreateMissingJobDirectory), else the held directory itself, even when it was removed.
   */
  scriptDirectory: (finishing: boolean) => string
  /** Closes the descriptor (the job has ended). */
  close: () => void
}

/** Creates the job's directory (or takes over an existing one) with the job mode and group, and holds it open. */
export async function prepareJobDirectory(
  directory: string,
  options: { existing: ExistingDirectory; gid: number | undefined },
): Promise<JobDirectory> {
  let fd: number | undefined
  try {
    // Synchronous metadata calls (as the script checks in src/scripts/safety.ts): microseconds each
    // on the agent's own directory, where each thread-pool round trip cost ~1-2 ms on a busy
    // machine, on every job's path. Emptying stays asynchronous: it may remove a large tree.
    // mkdirSync answers undefined when the directory was there already, a path when it created it.
    let created: string | undefined
    try {
      created = mkdirSync(directory, { recursive: true, mode: JOB_DIRECTORY_MODE })
    } catch (error) {
      // mkdir(2) never follows a link: a dangling one, a file, a pipe or a device under the name stays
      if (lstatSync(directory, { throwIfNoEntry: false }) !== undefined)
        throw new Error('something that is not a directory is there (a file, a pipe, a device or a dangling symlink); it is left as it is')
      throw error
    }
    if (created === undefined && options.existing === 'refuse') {
      throw new Error(
        'it already exists and allowed_to_delete_files is false, so what it holds is not removed (an earlier job with this id left it): remove the directory, or set allowed_to_delete_files=true',
      )
    }
    // A symlink planted under the job's name would send the agent's chmod, chown and rm elsewhere.
    try {
      fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
    } catch (error) {
      if (['ELOOP', 'ENOTDIR'].includes((error as { code?: string }).code ?? '')) throw new Error('it is not a directory (a symlink?)')
      throw error
    }
    fchmodSync(fd, JOB_DIRECTORY_MODE)
    if (options.gid !== undefined) fchownSync(fd, SAME_OWNER, options.gid)
    const here = `/proc/${process.pid}/fd/${fd}`
    // A directory this call just created is empty: nothing to list.
    if (created === undefined) await removeEntries(here)
    const held = fstatSync(fd)
    const heldFd = fd
    let open = true
    const pinned = () => {
      const now = lstatSync(directory, { throwIfNoEntry: false })
      if (!open || now === undefined || !now.isDirectory() || now.dev !== held.dev || now.ino !== held.ino) {
        throw new JobError(
          `the job directory ${directory} was replaced or removed while the job ran (${now?.isSymbolicLink() ? 'a symlink is there now' : now === undefined ? 'nothing is there now' : 'another entry is there now'}); the agent reads and writes only the directory it prepared`,
        )
      }
      return here
    }
    return {
      path: directory,
      pinned,
      scriptDirectory(finishing) {
        if (!finishing) {
          pinned()
          return directory
        }
        const now = lstatSync(directory, { throwIfNoEntry: false })
        return now?.isDirectory() || !open ? directory : here
      },
      close() {
        if (!open) return
        open = false
        closeSync(heldFd)
      },
    }
  } catch (error) {
    if (fd !== undefined) closeSync(fd)
    throw new JobError(`cannot prepare the job directory ${directory}: ${(error as Error).message}`, { cause: error })
  }
}

/**
 * Removes everything in the directory at `folder` (a held directory, /proc/<pid>/fd/<fd>), never
 * through a link: a symlink is removed, not what it points to, and each subdirectory is opened
 * with O_NOFOLLOW and emptied through that handle. fs.rm walks by path: a subdirectory swapped
 * for a symlink between its check and its listing would have it delete what the link points to.
 */
export async function removeEntries(folder: string): Promise<void> {
  for (const name of await readdir(folder)) await removeEntry(join(folder, name))
}

/** Removes one entry (a file, a link, or a directory and what it holds) without following a link. */
export async function removeEntry(path: string): Promise<void> {
  try {
    return await unlink(path)
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'ENOENT') return
    if (code !== 'EISDIR' && code !== 'EPERM') throw error
  }
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  try {
    await removeEntries(`/proc/self/fd/${handle.fd}`)
  } finally {
    await handle.close()
  }
  await rmdir(path)
}

/**
 * A name the agent writes in a job directory, checked where it is used (after every change made
 * to it, such as a `.osb` suffix removed): one plain path component that fits NAME_MAX.
 */
export function jobFileName(name: string, what: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || Buffer.byteLength(name) > 255) {
    throw new JobError(`${what} is ${JSON.stringify(name)}, which is not a single file name the agent may write in the job directory`)
  }
  return name
}

/**
 * Creates a file the agent writes (a download, a decoded dump) exclusively, never through a link,
 * with the job file mode and group set on the open file before any byte is written.
 */
export async function createJobFile(path: string, gid: number | undefined): Promise<FileHandle> {
  const file = await open(path, NEW_FILE, 0o600)
  try {
    await file.chmod(JOB_FILE_MODE)
    if (gid !== undefined) await file.chown(SAME_OWNER, gid)
    return file
  } catch (error) {
    await file.close()
    throw error
  }
}

/**
 * Opens a directory the agent just made with mkdtemp (0700) in the job directory, never through a
 * link, and checks it is still that one: a process that can write the job directory (a script, or
 * the database user a script gave it to) may rename it and leave a symlink in its place between
 * the mkdtemp and any later use of its path. Everything in it is then reached through the handle.
 */
export async function openPrivateDirectory(path: string): Promise<FileHandle> {
  let handle: FileHandle | undefined
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
    const info = await handle.stat()
    // mkdtemp makes it 0700 less the umask: the agent's, and nobody else's to write or list
    if (!info.isDirectory() || info.uid !== process.getuid?.() || (info.mode & 0o077) !== 0)
      throw new Error('it is no longer the directory the agent made')
    return handle
  } catch (error) {
    await handle?.close()
    const code = (error as { code?: string }).code
    const why = code === 'ELOOP' || code === 'ENOTDIR' ? 'a symlink or another entry replaced it' : (error as Error).message
    throw new JobError(`the agent's working directory ${path} was replaced while it was used (${why}); nothing was written through it`, {
      cause: error,
    })
  }
}

/** Whether anything, a symlink or a dangling one included, is at `path`. */
export function entryAt(path: string): ReturnType<typeof lstatSync> | undefined {
  return lstatSync(path, { throwIfNoEntry: false })
}

/**
 * Before a cleanup or unlock script: the job directory is its working directory, and no script
 * can be started in a directory that is gone (an earlier script may have removed it). It is made
 * again, empty, so that unlock still runs. Whatever else took the job's name (a symlink, to a
 * file or anywhere, a file, a pipe) is removed first, never what it points to: the script would
 * otherwise run through the link, or not start at all.
 */
export function recreateMissingJobDirectory(directory: string, gid: number | undefined): void {
  try {
    const existing = lstatSync(directory, { throwIfNoEntry: false })
    if (existing !== undefined && !existing.isDirectory()) unlinkSync(directory)
    if (mkdirSync(directory, { recursive: true, mode: JOB_DIRECTORY_MODE }) === undefined) return
    const fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
    try {
      fchmodSync(fd, JOB_DIRECTORY_MODE)
      if (gid !== undefined) fchownSync(fd, SAME_OWNER, gid)
    } finally {
      closeSync(fd)
    }
  } catch {
    // the script's start then fails and its message says why
  }
}

/** The prefix of the private directory a download is written in (src/jobs/transfer.ts). */
export const DOWNLOAD_WORK_PREFIX = '.agent-download-'

/**
 * After a crash: the agent's own download directories in a job directory (a partial download,
 * as large as the object) are removed. Reached through the job directory opened with
 * O_NOFOLLOW; removeEntry removes a link, never what it points to. A job directory that is gone, or is
 * not a directory, holds none.
 */
export async function removeInterruptedDownloads(directory: string): Promise<void> {
  let fd: number
  try {
    fd = openSync(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch {
    return
  }
  try {
    const here = `/proc/self/fd/${fd}`
    for (const name of readdirSync(here)) if (name.startsWith(DOWNLOAD_WORK_PREFIX)) await removeEntry(join(here, name))
  } finally {
    closeSync(fd)
  }
}

/** directory_backup/<id> or directory_restore/<id>; a verify job has none (''). */
export function jobDirectoryPath(job: { kind: JobKind; id: string }, config: Pick<Config, 'directoryBackup' | 'directoryRestore'>): string {
  if (job.kind === 'verify') return ''
  return join(job.kind === 'backup' ? config.directoryBackup : config.directoryRestore, job.id)
}
