// Named pipes between the agent and a lifecycle script (BACKUP_STREAM, RESTORE_STREAM).
//
// Opened non-blocking and read or written through libuv (a net.Socket on the fd), so a script
// that never touches the pipe ties up no thread.
// - The script writes (BACKUP_STREAM): the agent also holds a write end ("keeper"), so the pipe
//   does not report end-of-stream before the script has opened it; dropping the keeper after
//   the script exited lets the real end arrive.
// - The script reads (RESTORE_STREAM): the agent opens its write end only once the script has
//   opened the pipe for reading. Writing earlier into a pipe held open by a keeper could fit a
//   small stream entirely into the pipe buffer and close it before the script opens it; its
//   open would then wait for a writer forever.
//
// The pipe is made exclusively (mkfifo fails on any existing name, a symlink included), then
// pinned: an O_PATH|O_NOFOLLOW descriptor, checked (fstat) to be a FIFO, which neither reads nor
// writes the pipe. Every later open goes through that descriptor (/proc/self/fd/<pin>), never
// through the name again: a name swapped or removed meanwhile cannot redirect the agent, and the
// pipe's device and inode stay its own (they also find the processes that still hold the pipe,
// src/scripts/process-group.ts, when a script left one behind).
//
// Node has no mkfifo(3), so the mkfifo command makes the pipe. Awaited, not run synchronously:
// execFileSync held the event loop until the command had exited, 30-70 ms under load on this
// VM, and every poll waited with it (docs/PERFORMANCE.md).
import { execFile } from 'node:child_process'
import { closeSync, constants, fstatSync, openSync, rmSync } from 'node:fs'
import net from 'node:net'
import { basename } from 'node:path'
import { promisify } from 'node:util'
import { JobError } from '../../errors.ts'
import type { FileIdentity } from '../../scripts/process-group.ts'
import { keptChunks } from './kept-chunks.ts'

const execFileAsync = promisify(execFile)

/** Linux's O_PATH (not in Node's constants): a descriptor that names a file without opening it. */
const O_PATH = (constants as Record<string, number | undefined>).O_PATH ?? 0o10000000

interface Pinned {
  /** An O_PATH descriptor of the pipe. */
  pin: number
  identity: FileIdentity
}

/**
 * Makes the pipe at `path` and pins it. What an earlier job left under the name is removed first
 * (rm removes a link, never its target); mkfifo then creates the name or fails, also when
 * something appeared there meanwhile: the stage fails rather than use a name it did not make.
 */
async function mkfifo(path: string): Promise<Pinned> {
  let pin: number | undefined
  try {
    rmSync(path, { force: true })
    await execFileAsync('mkfifo', ['-m', '600', path])
    pin = openSync(path, O_PATH | constants.O_NOFOLLOW)
    const info = fstatSync(pin)
    if (!info.isFIFO()) throw new Error('the name is no longer the pipe just made')
    return { pin, identity: { dev: info.dev, ino: info.ino } }
  } catch (error) {
    if (pin !== undefined) closeSync(pin)
    const detail = String((error as { stderr?: string }).stderr || (error as Error).message).trim()
    throw new JobError(`cannot create the named pipe ${basename(path)} in the job directory: ${detail}`, { cause: error })
  }
}

/** Opens the pinned pipe itself (whatever its name has become since), non-blocking. */
function openPinned(pinned: Pinned, flags: number): number {
  const fd = openSync(`/proc/self/fd/${pinned.pin}`, flags | constants.O_NONBLOCK)
  const info = fstatSync(fd)
  if (!info.isFIFO() || info.dev !== pinned.identity.dev || info.ino !== pinned.identity.ino) {
    closeSync(fd) // cannot happen short of a broken /proc: checked all the same
    throw new JobError('the named pipe could not be reopened through /proc/self/fd')
  }
  return fd
}

/** Removes the pipe's name: nothing can open it any more; open ends keep working. */
function unlinkPipe(path: string): void {
  rmSync(path, { force: true })
}

export interface FifoEnd {
  /** The name the script opens (the agent itself reaches the pipe through its pin or `path` given to open). */
  path: string
  /** The pipe's device and inode (its name may be gone). */
  identity: FileIdentity
  /** What the script writes, as borrowed chunks (kept-chunks.ts): each valid until the next is asked for. */
  chunks: AsyncIterator<Buffer>
  /** Resolves once the agent has read the end of the stream (every writer closed it); pends after an abandon. */
  ended: Promise<void>
  /** Removes the name, so that no process opens the pipe any more. */
  unlink(): void
  /** Closes the agent's own keeper end: a reader then sees EOF once the script's writers close. */
  releaseKeeper(): void
  /** Gives up on the stream: `chunks` fails with `reason` (never a clean end), everything is closed. */
  abandon(reason: string): void
  /** Closes everything and removes the pipe. */
  dispose(): void
}

/**
 * A pipe the script writes to (BACKUP_STREAM). `path` is where the agent makes it (through the
 * job directory it holds open), `shown` the name the script gets.
 */
export async function openFifoForReading(path: string, shown = path): Promise<FifoEnd> {
  const pinned = await mkfifo(path)
  const { identity } = pinned
  let mine: number
  let keeper: number | undefined
  try {
    mine = openPinned(pinned, constants.O_RDONLY)
    // Opening for writing succeeds without blocking once a reader exists (ours).
    keeper = openPinned(pinned, constants.O_WRONLY)
  } finally {
    closeSync(pinned.pin) // the open ends hold the pipe now
  }
  const { socket, chunks } = keptChunks(mine) // a read error is reported to the consumer of `chunks`
  const ended = new Promise<void>((resolve) => socket.once('end', resolve)) // never resolved by a destroy
  const releaseKeeper = () => {
    if (keeper === undefined) return
    closeSync(keeper)
    keeper = undefined
  }
  return {
    path: shown,
    identity,
    chunks,
    ended,
    unlink: () => unlinkPipe(path),
    releaseKeeper,
    abandon(reason) {
      releaseKeeper()
      // destroyed with an error: the reader reports it rather than the end of a cut stream
      socket.destroy(new JobError(reason))
      unlinkPipe(path)
    },
    dispose() {
      releaseKeeper()
      socket.destroy()
      unlinkPipe(path)
    },
  }
}

export interface FifoWriter {
  /** The name the script opens. */
  path: string
  /** The pipe's device and inode (its name may be gone). */
  identity: FileIdentity
  /** The write end, once the script has opened the pipe for reading. */
  connected: Promise<net.Socket>
  /** Whether the write end is open (a reader had opened the pipe). */
  isConnected(): boolean
  /** Removes the name, so that no process opens the pipe any more. */
  unlink(): void
  /** Stops waiting, closes the write end and removes the pipe. */
  dispose(): void
}

const CONNECT_POLL_MS = 20

/** A pipe the script reads from (RESTORE_STREAM); `path` and `shown` as for openFifoForReading. */
export async function openFifoForWriting(path: string, shown = path): Promise<FifoWriter> {
  const pinned = await mkfifo(path)
  let pinOpen = true
  const unpin = () => {
    if (!pinOpen) return
    pinOpen = false
    closeSync(pinned.pin)
  }
  let disposed = false
  let socket: net.Socket | undefined
  const connected = (async () => {
    try {
      // O_WRONLY|O_NONBLOCK fails with ENXIO until a reader has the pipe open.
      for (;;) {
        if (disposed) throw new JobError('the restore script never opened RESTORE_STREAM')
        try {
          socket = new net.Socket({ fd: openPinned(pinned, constants.O_WRONLY), readable: false, writable: true })
          return socket
        } catch (error) {
          if ((error as { code?: string }).code !== 'ENXIO') throw error
        }
        await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS))
      }
    } finally {
      unpin()
    }
  })()
  connected.catch(() => {}) // the transfer that awaits it reports the failure
  return {
    path: shown,
    identity: pinned.identity,
    connected,
    isConnected: () => socket !== undefined,
    unlink: () => unlinkPipe(path),
    dispose() {
      disposed = true
      socket?.destroy()
      unlinkPipe(path)
    },
  }
}
