// Named pipes between the agent and a lifecycle script (BACKUP_STREAM, RESTORE_STREAM).
//
// Opened non-blocking and read or written through libuv (a net.Socket on the fd), so a script
// that never touches the pipe ties up no thread. The agent holds the other end open itself
// ("keeper"), so the pipe neither reports end-of-stream before the script opens it nor fails
// writes before the script reads; dropping the keeper lets the real end arrive.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync, rmSync } from 'node:fs'
import net from 'node:net'

function mkfifo(path: string): void {
  rmSync(path, { force: true })
  execFileSync('mkfifo', ['-m', '600', path])
}

export interface FifoEnd {
  path: string
  socket: net.Socket
  /** Closes the agent's own keeper end: a reader then sees EOF once the script's writers close. */
  releaseKeeper(): void
  /** Closes everything and removes the pipe. */
  dispose(): void
}

function openFifo(path: string, direction: 'read' | 'write'): FifoEnd {
  mkfifo(path)
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  // Opening for writing succeeds without blocking once a reader exists (ours).
  const write = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)
  const [mine, keeper] = direction === 'read' ? [read, write] : [write, read]
  const socket = new net.Socket({ fd: mine, readable: direction === 'read', writable: direction === 'write' })
  socket.on('error', () => {}) // reported through the stream pipeline that uses it
  let keeperOpen = true
  const releaseKeeper = () => {
    if (!keeperOpen) return
    keeperOpen = false
    closeSync(keeper)
  }
  return {
    path,
    socket,
    releaseKeeper,
    dispose() {
      releaseKeeper()
      socket.destroy()
      rmSync(path, { force: true })
    },
  }
}

/** A pipe the script writes to (BACKUP_STREAM). */
export const openFifoForReading = (path: string) => openFifo(path, 'read')
/** A pipe the script reads from (RESTORE_STREAM). */
export const openFifoForWriting = (path: string) => openFifo(path, 'write')
