// Connection pools for outgoing storage traffic, shared by all jobs. They honour
// HTTPS_PROXY/HTTP_PROXY/NO_PROXY (Node's built-in proxy support) and the default CA list that
// src/tls.ts extends with the system store and ca_file.
import type { Agent as HttpsAgent } from 'node:https'
import { http, https } from '../../util/builtins.ts'
import { applyTrust } from '../../tls.ts'

const options = { keepAlive: true, maxSockets: 64, proxyEnv: process.env }
export const httpAgent = new http.Agent(options)
let httpsPool: HttpsAgent | undefined

/** The HTTPS pool, made (with node:https and the trusted CA list) on the first HTTPS request. */
export function httpsAgent(): HttpsAgent {
  applyTrust()
  httpsPool ??= new (https().Agent)(options)
  return httpsPool
}

/** Connect and idle limits: a stalled server must not hang a job. */
export const CONNECT_TIMEOUT_MS = 15_000
export const IDLE_TIMEOUT_MS = 120_000
