// Connection pools for outgoing storage traffic, shared by all jobs. They honour
// HTTPS_PROXY/HTTP_PROXY/NO_PROXY (Node's built-in proxy support) and the default CA list that
// src/tls.ts extends with the system store and ca_file.
import http from 'node:http'
import https from 'node:https'

const options = { keepAlive: true, maxSockets: 64, proxyEnv: process.env }
export const httpAgent = new http.Agent(options)
export const httpsAgent = new https.Agent(options)

/** Connect and idle limits: a stalled server must not hang a job. */
export const CONNECT_TIMEOUT_MS = 15_000
export const IDLE_TIMEOUT_MS = 120_000
