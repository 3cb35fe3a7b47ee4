// Entry point: wiring and signals only.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, DEMO_DIRECTORY, loadConfig, type Config } from './config.ts'
import { ensureCredentials } from './credentials-file.ts'
import { buildApp } from './http/app.ts'
import { finishRecovery, markInterrupted } from './jobs/recovery.ts'
import { JobRegistry } from './jobs/registry.ts'
import { JobStore } from './jobs/store.ts'
import { createLogger } from './log.ts'
import { AgentMetrics } from './metrics.ts'
import { trustCertificates } from './tls.ts'

const PRUNE_EVERY_MS = 60 * 60 * 1000

async function main(): Promise<void> {
  let loaded
  try {
    loaded = loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`osb-backup-agent: not started: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
  const { config, warnings } = loaded
  const log = createLogger(config.logLevel)
  for (const warning of warnings) log.warn(warning)

  if (config.demo) {
    // Say where the credentials are, never what they are.
    const file = join(process.cwd(), DEMO_DIRECTORY, 'credentials')
    const { credentials, created } = await ensureCredentials(file)
    config.clientUsername = credentials.username
    config.clientPassword = credentials.password
    log.warn({ credentialsFile: file, created, localStorageRoot: config.localStorageRoot }, 'demo start: no SPEC §6 variable is set, so the agent listens on 127.0.0.1 only, keeps everything under ./var and uses the credentials in credentialsFile; set the variables for a real deployment')
  }

  trustCertificates(config.caFile)
  for (const dir of [config.directoryBackup, config.directoryRestore]) await mkdir(dir, { recursive: true, mode: 0o750 })

  const store = new JobStore(config.directoryState)
  const registry = new JobRegistry(config.maxJobNumber, store)
  const stored = registry.load()
  const metrics = new AgentMetrics(registry)
  // a job a killed agent left running ends here, FAILED: it counts as finished now
  for (const row of stored) if (row.status === 'RUNNING') metrics.jobInterrupted(row.kind)
  const interrupted = markInterrupted(stored, registry)
  const prune = () => registry.prune(Date.now(), config.jobRetentionDays * 86_400_000, config.maxJobRecords)
  const pruned = prune()
  setInterval(prune, PRUNE_EVERY_MS).unref()

  const deps = { config, registry, log, agentEnv: process.env, observer: metrics }
  const app = await buildApp({ config, registry, log, runner: deps, metrics })
  await app.listen({ host: config.clientHost, port: config.clientPort })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.clientPort
  log.info({ host: config.clientHost, port, scriptsPath: config.scriptsPath, demo: config.demo, interrupted: interrupted.length, pruned }, 'agent listening')
  const recovery = finishRecovery(interrupted, deps)

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    shutDown(signal, config, registry, log, recovery).then(
      async () => {
        await app.close()
        store.close()
        log.info('stopped')
        process.exit(0)
      },
      (error: unknown) => {
        log.error({ error: (error as Error).message }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

/**
 * Graceful stop: no new jobs (503), polls still answered; running jobs get
 * shutdown_grace_seconds to finish, then are cancelled (cleanup and unlock still run, each
 * bounded by hook_timeout_seconds) and recorded.
 */
async function shutDown(signal: string, config: Config, registry: JobRegistry, log: ReturnType<typeof createLogger>, recovery: Promise<void>): Promise<void> {
  registry.close()
  log.info({ signal, runningJobs: registry.running, graceSeconds: config.shutdownGraceSeconds }, 'stopping: no new jobs')
  const deadline = Date.now() + config.shutdownGraceSeconds * 1000
  while (registry.running > 0 && Date.now() < deadline) await sleep(100)
  for (const entry of registry.liveJobs()) {
    log.warn({ job: entry.id, kind: entry.kind }, 'cancelling a running job for shutdown')
    registry.cancel(entry.kind, entry.id, `cancelled: the agent was stopped (${signal})`)
  }
  while (registry.running > 0) await sleep(100)
  await recovery
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// A bug in one request or job must not take the agent (and every job's record) down with it.
process.on('uncaughtException', (error) => {
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'uncaught exception', err: { message: error.message, stack: error.stack } })}\n`)
})
process.on('unhandledRejection', (reason) => {
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'unhandled rejection', reason: String(reason) })}\n`)
})

main().catch((error: unknown) => {
  process.stderr.write(`osb-backup-agent: not started: ${(error as Error).message}\n`)
  process.exit(1)
})
