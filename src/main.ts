// Entry point: wiring and signals only.
import type { Server as TlsServer } from 'node:tls'
import { ConfigError, loadConfig } from './config.ts'
import { buildApp } from './http/app.ts'
import { applyTlsMaterial, loadTlsMaterial } from './http/tls.ts'
import { prepareJobRoot } from './jobs/directory.ts'
import { JobRegistry } from './jobs/registry.ts'
import { createLogger } from './log.ts'
import { trustCertificates } from './tls.ts'
import { resolveGroup } from './util/group.ts'

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

  // A job_group that does not exist falls back to none, like any unusable setting (SPEC §6).
  let jobGid: number | undefined
  if (config.jobGroup !== undefined) {
    const group = await resolveGroup(config.jobGroup)
    if (group.ok) jobGid = group.gid
    else log.warn(`job_group: cannot use the value given (${group.error}); job directories keep the agent's own group`)
  }
  for (const dir of [config.directoryBackup, config.directoryRestore]) await prepareJobRoot(dir, jobGid)

  // Unusable certificates stop the start: serving plain HTTP instead would be a silent downgrade.
  const tls = await loadTlsMaterial(config)
  if (tls && !tls.ok) {
    process.stderr.write(`osb-backup-agent: not started: ${tls.error}\n`)
    process.exit(2)
  }

  const registry = new JobRegistry(config.maxJobNumber)
  const app = buildApp({ config, registry, log, runner: { config, registry, log, agentEnv: process.env, jobGid }, tls: tls?.material })
  await app.listen({ host: config.clientHost, port: config.clientPort })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.clientPort
  log.info({ host: config.clientHost, port, tls: tls !== undefined, clientCertificates: config.tlsClientCaFile !== undefined, scriptsPath: config.scriptsPath }, 'agent listening')

  // SIGHUP re-reads the TLS files (certificate rotation). Handled even without TLS: its default
  // action would end the agent, and every running job with it.
  process.on('SIGHUP', () => {
    if (!tls) return log.info('SIGHUP: nothing to reload (plain HTTP)')
    loadTlsMaterial(config).then((reloaded) => {
      if (!reloaded?.ok) return log.error({ error: reloaded?.error }, 'SIGHUP: TLS files not reloaded; the certificates in use stay')
      applyTlsMaterial(app.server as unknown as TlsServer, reloaded.material)
      log.info('SIGHUP: TLS certificates reloaded')
    }, (error: unknown) => log.error({ error: (error as Error).message }, 'SIGHUP: TLS reload failed'))
  })

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
