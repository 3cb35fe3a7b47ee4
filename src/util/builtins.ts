// node:http, node:https and node:tls, loaded with require() instead of `import`. An ESM import of
// a built-in builds its namespace from every export, and node:http's include the lazy
// WebSocket, MessageEvent and CloseEvent getters, which load undici: ~15 MB of RSS the agent
// never uses (Node 24, idle: Node alone 43 MB, http imported 61 MB, http required 46 MB).
// https and tls (OpenSSL's contexts, ~6 MB more) load on first use: an agent without TLS on its
// API and with plain-HTTP storage never loads them. Import these names, never the modules.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const http = require('node:http') as typeof import('node:http')

let httpsModule: typeof import('node:https') | undefined
let tlsModule: typeof import('node:tls') | undefined

export function https(): typeof import('node:https') {
  httpsModule ??= require('node:https') as typeof import('node:https')
  return httpsModule
}

export function tls(): typeof import('node:tls') {
  tlsModule ??= require('node:tls') as typeof import('node:tls')
  return tlsModule
}
