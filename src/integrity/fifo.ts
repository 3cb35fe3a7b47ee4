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
// Node has no mkfifo(3), so the mkfifo command makes the pipe. Awaited, not run synchronously:
// execFileSync held the event loop until the command had exited, 30-70 ms under load on this
// VM, and every poll waited with it (docs/PERFORMANCE.md).
import { execFile } from 'node:child_process'
import { closeSync, constants, openSync, rmSync } from 'node:fs'
import net from 'node:net'
import { promisify } from 'node:util'
import { keptChunks } from './kept-chunks.ts'

const execFileAsync = promisify(execFile)

async function mkfifo(path: string): Promise<void> {
  rmSync(path, { force: true })
  await execFileAsync('mkfifo', ['-m', '600', path])
}

export interface FifoEnd {
  path: string
  /** What the script writes, as borrowed chunks (kept-chunks.ts): each valid until the next is asked for. */
  chunks: AsyncIterator<Buffer>
  /** Closes the agent's own keeper end: a reader then sees EOF once the script's writers close. */
  releaseKeeper(): void
  /** Closes everything and removes the pipe. */
  dispose(): void
}

/** A pipe the script writes to (BACKUP_STREAM). */
export async function openFifoForReading(path: string): Promise<FifoEnd> {
  await mkfifo(path)
  const mine = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  // Opening for writing succeeds without blocking once a reader exists (ours).
  const keeper = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
  const { socket, chunks } = keptChunks(mine) // a read error is reported to the consumer of `chunks`
  let keeperOpen = true
  const releaseKeeper = () => {
    if (!keeperOpen) return
    keeperOpen = false
    closeSync(keeper)
  }
  return {
    path,
    chunks,
    releaseKeeper,
    dispose() {
      releaseKeeper()
      socket.destroy()
      rmSync(path, { force: true })
    },
  }
}

export interface FifoWriter {
  path: string
  /** The write end, once the script has opened the pipe for reading. */
  connected: Promise<net.Socket>
  /** Stops waiting, closes the write end and removes the pipe. */
  dispose(): void
}

const CONNECT_POLL_MS = 20

/** A pipe the script reads from (RESTORE_STREAM). */
export async function openFifoForWriting(path: string): Promise<FifoWriter> {
  await mkfifo(path)
  let disposed = false
  let socket: net.Socket | undefined
  const connected = (async () => {
    // O_WRONLY|O_NONBLOCK fails with ENXIO until a reader has the pipe open.
    for (;;) {
      if (disposed) throw new Error('the restore script never opened RESTORE_STREAM')
      try {
        socket = new net.Socket({ fd: openSync(path, constants.O_WRONLY | constants.O_NONBLOCK), readable: false, writable: true })
        return socket
      } catch (error) {
        if ((error as { code?: string }).code !== 'ENXIO') throw error
      }
      await new Promise((resolve) => setTimeout(resolve, CONNECT_POLL_MS))
    }
  })()
  connected.catch(() => {}) // the transfer that awaits it reports the failure
  return {
    path,
    connected,
    dispose() {
      disposed = true
      socket?.destroy()
      rmSync(path, { force: true })
    },
  }
}
