// The agent's HTTP server in the test's own process, on a store in a fresh folder, for tests of
// the server itself (listening, the routes it serves); credentials u:p.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../src/config.ts'
import { createApiServer, type ApiServer } from '../../src/http/server.ts'
import { JobRegistry } from '../../src/jobs/registry.ts'
import { JobStore } from '../../src/jobs/store.ts'
import { createLogger } from '../../src/log.ts'
import { AgentMetrics } from '../../src/metrics.ts'

export interface InProcessServers {
  /** A new server on the shared store and registry, not listening yet. */
  make: () => ApiServer
  /** Closes the store and removes the folder (close the servers first). */
  close: () => void
}

export function inProcessServers(): InProcessServers {
  const dir = mkdtempSync(join(tmpdir(), 'osb-api-'))
  const { config } = loadConfig({
    client_username: 'u',
    client_password: 'p',
    directory_backup: join(dir, 'b'),
    directory_restore: join(dir, 'r'),
  })
  const store = new JobStore(join(dir, 'state'))
  const registry = new JobRegistry(2, store)
  const log = createLogger('silent')
  const metrics = new AgentMetrics(registry)
  return {
    make: () => createApiServer({ config, registry, log, runner: { config, registry, log, agentEnv: {} }, metrics }),
    close: () => {
      store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
