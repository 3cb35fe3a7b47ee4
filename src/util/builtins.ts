// node:http, node:https, node:tls, node:net and node:crypto, loaded with process.getBuiltinModule() instead of
// `import`. An ESM import of a built-in builds its namespace from every export, and node:http's
// include the lazy WebSocket, MessageEvent and CloseEvent getters, which load undici: ~15 MB of
// RSS the agent never uses (Node 24, idle: Node alone 43 MB, http imported 61 MB, http fetched
// this way 46 MB). A bundler leaves the call alone, as it would not a require().
// https and tls (OpenSSL's contexts, ~6 MB more) load on first use: an agent without TLS on its
// API and with plain-HTTP storage never loads them. Import these names, never the modules.
export const http = process.getBuiltinModule('node:http')
/** The same for node:net: its namespace's getters load BlockList and SocketAddress (~1 ms of a start). */
export const net = process.getBuiltinModule('node:net')

let httpsModule: typeof import('node:https') | undefined
let cryptoModule: typeof import('node:crypto') | undefined
let tlsModule: typeof import('node:tls') | undefined

export function https(): typeof import('node:https') {
  httpsModule ??= process.getBuiltinModule('node:https')
  return httpsModule
}

/**
 * node:crypto loads ~20 internal modules (~8 ms of a start here); an agent answering its first
 * polls needs none of them (src/http/auth.ts compares without it), so the modules on the path of
 * a start take it from here when they first need it.
 */
export function crypto(): typeof import('node:crypto') {
  cryptoModule ??= process.getBuiltinModule('node:crypto')
  return cryptoModule
}

export function tls(): typeof import('node:tls') {
  tlsModule ??= process.getBuiltinModule('node:tls')
  return tlsModule
}
