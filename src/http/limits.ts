// Server limits against clients that hold connections open (slowloris) or open too many.
//
// Timeouts: the headers of a request must arrive within HEADERS_TIMEOUT_MS and the whole request
// (a body is at most 1 MiB) within REQUEST_TIMEOUT_MS; a TLS handshake within
// HANDSHAKE_TIMEOUT_MS; a connection that sends nothing at all is closed after IDLE_TIMEOUT_MS
// (Node's header timeout only starts with the first byte). Connections: up to MAX_CONNECTIONS are served normally; the ones beyond
// are still accepted, and every request on them is answered 429 with `Connection: close`, so a
// legitimate burst sees an answer it understands instead of a reset. Only past
// HARD_MAX_CONNECTIONS does Node drop new sockets outright, to keep file descriptors for the jobs.
import type { IncomingMessage } from 'node:http'
import type { Server, Socket } from 'node:net'

export const HEADERS_TIMEOUT_MS = 10_000
export const REQUEST_TIMEOUT_MS = 30_000
export const HANDSHAKE_TIMEOUT_MS = 10_000
/** Inactivity before a request is complete (between requests, the keep-alive timeout applies). */
export const IDLE_TIMEOUT_MS = 10_000
/**
 * How often Node looks for requests past those timeouts while a connection is open: a request is
 * closed up to this much after its timeout (Node's default, 30 s, would give a slowloris 40 s).
 * With nothing connected the look pauses (timeoutChecksWhileConnected).
 */
export const TIMEOUT_CHECK_INTERVAL_MS = 2_000
/** Idle keep-alive connections: Fastify's default, longer than any manager's poll interval. */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000
export const MAX_CONNECTIONS = 1024
export const HARD_MAX_CONNECTIONS = 4 * MAX_CONNECTIONS

/** After an answer given while the body was still arriving: what is still read and discarded. */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024
export const DRAIN_MAX_MS = 5_000

const OVER_LIMIT = Symbol('connection over the limit')

type MarkedSocket = Socket & { [OVER_LIMIT]?: true }

export interface ConnectionLimit {
  /** True for a request on a connection that was opened beyond MAX_CONNECTIONS. */
  overLimit: (socket: Socket) => boolean
  /** Connections open now. */
  open: () => number
}

/**
 * Counts the server's connections and marks those opened beyond `max`. `event` is
 * 'secureConnection' for TLS, so the socket marked is the one requests arrive on.
 */
export function limitConnections(
  server: Server,
  event: 'connection' | 'secureConnection',
  max = MAX_CONNECTIONS,
  hardMax = HARD_MAX_CONNECTIONS,
): ConnectionLimit {
  let open = 0
  server.maxConnections = hardMax
  const checks = timeoutChecksWhileConnected(server)
  server.on('listening', () => open === 0 && checks.pause())
  server.on(event, (socket: MarkedSocket) => {
    if (open++ === 0) checks.resume()
    if (open > max) socket[OVER_LIMIT] = true
    socket.once('close', () => --open === 0 && checks.pause())
  })
  return {
    overLimit: (socket) => (socket as MarkedSocket)[OVER_LIMIT] === true,
    open: () => open,
  }
}

/**
 * The delay of a paused look: one wake-up an hour. Not the longest delay a Node timer takes
 * (2^31-1 ms): with that one the slow-header test hung now and then under `node --test`, the
 * slow client never cut off (2 of ~57 runs); with an hour 318 of 320 runs passed, and in the
 * one hang that was traced the agent had cut both connections off on time (docs/PERFORMANCE.md).
 */
export const PAUSED_MS = 3_600_000

/**
 * Node looks for requests past their header and request timeouts every
 * connectionsCheckingInterval from listen to close, connections or not: the idle agent woke
 * every 2 s for nothing (15 of its 18 wake-ups in 30 s). So the look runs only while a connection
 * is open. Node (re)starts it in its own 'listening' listener, setupConnectionsTracking, at the
 * server's connectionsCheckingInterval; calling that again with the interval set to PAUSED_MS
 * pauses it, with the interval put back resumes it. A Node without that listener keeps looking.
 */
function timeoutChecksWhileConnected(server: Server): { pause: () => void; resume: () => void } {
  const restart = server.listeners('listening').find((f) => f.name === 'setupConnectionsTracking')
  const http = server as Server & { connectionsCheckingInterval?: number }
  const interval = http.connectionsCheckingInterval
  if (restart === undefined || interval === undefined) return { pause: () => {}, resume: () => {} }
  const every = (ms: number) => {
    http.connectionsCheckingInterval = ms
    restart.call(server)
    http.connectionsCheckingInterval = interval
  }
  return { pause: () => every(PAUSED_MS), resume: () => every(interval) }
}

/** True while the request's body is still arriving: an answer now is an early one. */
export function bodyStillArriving(req: IncomingMessage): boolean {
  const declared = req.headers['content-length']
  const hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared !== '0')
  // (=== false: an injected request, in tests, has no such flag and no socket)
  return hasBody && req.complete === false
}

const draining = new WeakSet<Socket>()

/**
 * An answer given before the body has arrived (413, 401, 429…) must reach a client that is still
 * sending. Node closes a `Connection: close` socket as soon as the answer is written; the unread
 * body then makes the kernel reset the connection, and the client sees EPIPE or ECONNRESET
 * instead of the answer. So the agent closes only its sending side, keeps reading and discarding
 * the body up to `maxBytes` or `maxMs`, whichever comes first, then closes the connection.
 * The answer itself must say `Connection: close` (the connection is not reused).
 */
/** Between the end of the drain and the reset (see drainAfterAnswer). */
const LINGER_MS = 250

export function drainAfterAnswer(req: IncomingMessage, maxBytes = DRAIN_MAX_BYTES, maxMs = DRAIN_MAX_MS): void {
  const socket = req.socket
  if (draining.has(socket)) return
  draining.add(socket)
  // Called by Node once the answer is written: end our side (FIN), do not destroy yet.
  socket.destroySoon = function (this: Socket) {
    if (this.writable) this.end()
  }
  // Destroyed only once the answer has left: closing with unread bytes resets the connection, and
  // a reset while the answer still waits in the socket's buffer drops it (a client that sent the
  // byte limit before the answer was flushed got nothing). One that does not read: maxMs more.
  // Past the limit the agent stops reading and waits LINGER_MS before the reset: a client whose
  // own sending starves its reading (a loaded machine) still finds the answer in its buffer, and
  // the reset no longer drops it (the early-answer test saw an empty answer once in ~6 runs).
  const destroy = () => socket.destroy()
  const linger = () => setTimeout(destroy, LINGER_MS).unref()
  let closing = false
  const close = () => {
    if (closing) return
    closing = true
    req.pause()
    if (socket.writableFinished) return linger()
    socket.once('finish', linger)
    setTimeout(destroy, maxMs).unref()
  }
  const timer = setTimeout(close, maxMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  let received = 0
  req.on('data', (chunk: Buffer) => {
    received += chunk.length
    if (received > maxBytes) close()
  })
  req.on('error', () => {}) // a client gone already is no error of ours
  req.resume()
}
