// A real TCP proxy on 127.0.0.1 between the agent and a real storage server that misbehaves on
// demand: it cuts connections after some bytes, stalls them, or refuses them. Faults a real
// server cannot produce when asked.
import net from 'node:net'

export type Fault =
  | { kind: 'pass' }
  /** Resets the first `times` connections once `afterBytes` went upstream through each. */
  | { kind: 'cut'; afterBytes: number; times: number }
  /** Resets the first `times` connections once `afterBytes` came back through each: a download cut mid-body. */
  | { kind: 'cut-down'; afterBytes: number; times: number }
  /** Resets every connection once `afterBytes` went upstream (a permanent outage). */
  | { kind: 'cut-all'; afterBytes: number }
  /** Accepts connections and never forwards a byte. */
  | { kind: 'stall' }

export interface FaultyProxy {
  port: number
  /** host:port of the proxy, the way a request's endpoint gives it. */
  hostPort: string
  faults: () => number
  setFault: (fault: Fault) => void
  close: () => Promise<void>
}

export async function startFaultyProxy(targetPort: number, initial: Fault = { kind: 'pass' }): Promise<FaultyProxy> {
  let fault = initial
  let faults = 0
  /** Connections picked to be cut (decided when they open: several may open at once). */
  let planned = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    if (fault.kind === 'stall') return
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    const current = fault
    const cuts = current.kind === 'cut-all' || (current.kind === 'cut' && planned < current.times)
    const cutsDown = current.kind === 'cut-down' && planned < current.times
    if (cuts || cutsDown) planned++
    const limit = cuts || cutsDown ? (current as { afterBytes: number }).afterBytes : Infinity
    // Forwards `from` to `to` with backpressure; past `cutAfter` bytes, resets the client side.
    const forward = (from: net.Socket, to: net.Socket, cutAfter: number) => {
      let bytes = 0
      from.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > cutAfter) {
          faults++
          client.resetAndDestroy()
          upstream.destroy()
          return
        }
        if (!to.write(chunk)) from.pause()
      })
      to.on('drain', () => from.resume())
    }
    forward(client, upstream, cuts ? limit : Infinity)
    forward(upstream, client, cutsDown ? limit : Infinity)
    upstream.on('end', () => client.end())
    client.on('end', () => upstream.end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    hostPort: `127.0.0.1:${port}`,
    faults: () => faults,
    setFault: (f) => {
      fault = f
      planned = 0
      faults = 0
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
