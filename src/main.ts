// Entry point: wiring and signals only.
import { mkdir } from 'node:fs/promises'
import { ConfigError, loadConfig } from './config.ts'
import { buildApp } from './http/app.ts'
import { JobRegistry } from './jobs/registry.ts'
import { createLogger } from './log.ts'
import { trustCertificates } from './tls.ts'

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

  trustCertificates(config.caFile)
  for (const dir of [config.directoryBackup, config.directoryRestore]) await mkdir(dir, { recursive: true, mode: 0o750 })

  const registry = new JobRegistry(config.maxJobNumber)
  const app = buildApp({ config, registry, log, runner: { config, registry, log, agentEnv: process.env } })
  await app.listen({ host: config.clientHost, port: config.clientPort })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.clientPort
  log.info({ host: config.clientHost, port, scriptsPath: config.scriptsPath }, 'agent listening')

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal, runningJobs: registry.running }, 'stopping')
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

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
