// Entry point: wiring and signals only.
import { join } from 'node:path'
import type { Server as TlsServer } from 'node:tls'
import type { Logger } from './log.ts'
import { ConfigError, DEMO_DIRECTORY, loadConfig, type Config } from './config.ts'
import { ensureCredentials } from './credentials-file.ts'
import { createApiServer, type ApiServer } from './http/server.ts'
import { applyTlsMaterial, loadTlsMaterial, type TlsLoad } from './http/tls.ts'
import { prepareJobRoot } from './jobs/directory.ts'
import { JobRegistry, RELOCATED } from './jobs/registry.ts'
import { JobStore } from './jobs/store.ts'
import { watchStoreDirectory } from './jobs/store-watch.ts'
import { useRecordKey } from './jobs/sealed-secrets.ts'
import { createLogger, loseLinesOnClosedOutput } from './log.ts'
import { AgentMetrics } from './metrics.ts'
import { trustCertificates } from './tls.ts'
import { memoryReleaser, transferMemory } from './util/idle-memory.ts'

const PRUNE_EVERY_MS = 60 * 60 * 1000
const FIRST_PRUNE_MS = 1_000

async function main(): Promise<void> {
  const { config, warnings } = loadConfigOrExit()
  const log = createLogger(config.logLevel, undefined, config.logFormat)
  for (const warning of warnings) log.warn(warning)
  if (config.demo) await useDemoCredentials(config, log)

  trustCertificates(config.caFile)
  const jobGid = await resolveJobGid(config, log)
  for (const dir of [config.directoryBackup, config.directoryRestore]) await prepareJobRoot(dir, jobGid)

  // Unusable certificates stop the start: serving plain HTTP instead would be a silent downgrade.
  const tls = await loadTlsMaterial(config)
  if (tls && !tls.ok) {
    process.stderr.write(`osb-backup-agent: not started: ${tls.error}\n`)
    process.exit(2)
  }

  const { store, registry } = openJobRegistry(config, log)
  const stored = registry.load()
  const metrics = new AgentMetrics(registry)
  // a job a killed agent left running ends here, FAILED: it counts as finished now
  for (const row of stored) if (row.status === 'RUNNING') metrics.jobInterrupted(row.kind)
  // Recovery runs scripts: its modules (the job machinery) load only when a record owes steps.
  const recovering = stored.length === 0 ? undefined : await import('./jobs/recovery.ts')
  const interrupted = recovering?.markInterrupted(stored, registry) ?? []
  schedulePruning(registry, config, log)
  // directory_state removed or replaced while no job writes: noticed by inotify, not by polling
  watchStoreDirectory(config.directoryState, () => registry.checkStore())

  const deps = {
    config,
    registry,
    log,
    agentEnv: process.env,
    observer: metrics,
    jobGid,
    transferMemory: transferMemory(),
  }
  const api = createApiServer({ config, registry, log, runner: deps, metrics, tls: tls?.material })
  reloadTlsOnSighup(api, tls, config, log)

  await api.listen(config.clientHost, config.clientPort)
  logListening(api, config, tls !== undefined, interrupted.length, log)
  const recovery = recovering?.finishRecovery(interrupted, deps) ?? Promise.resolve()
  stopOnSignals(config, registry, store, api, log, recovery)
}

function loadConfigOrExit(): ReturnType<typeof loadConfig> {
  try {
    return loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`osb-backup-agent: not started: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
}

async function useDemoCredentials(config: Config, log: Logger): Promise<void> {
  // Say where the credentials are, never what they are.
  const file = join(process.cwd(), DEMO_DIRECTORY, 'credentials')
  const { credentials, created } = await ensureCredentials(file)
  config.clientUsername = credentials.username
  config.clientPassword = credentials.password
  log.warn(
    { credentialsFile: file, created, localStorageRoot: config.localStorageRoot },
    'demo start: no SPEC §6 variable is set, so the agent listens on 127.0.0.1 only, keeps everything under ./var and uses the credentials in credentialsFile; set the variables for a real deployment',
  )
}

// A job_group that does not exist falls back to none, like any unusable setting (SPEC §6).
async function resolveJobGid(config: Config, log: Logger): Promise<number | undefined> {
  if (config.jobGroup === undefined) return undefined
  const { resolveGroup } = await import('./util/group.ts') // loads child_process and util only when set
  const group = await resolveGroup(config.jobGroup)
  if (group.ok) return group.gid
  log.warn(`job_group: cannot use the value given (${group.error}); job directories keep the agent's own group`)
  return undefined
}

function openJobRegistry(config: Config, log: Logger): { store: JobStore; registry: JobRegistry } {
  const store = new JobStore(config.directoryState)
  // the key that seals the secrets a running job's record keeps for recovery
  try {
    useRecordKey(store.recordKey())
  } catch (error) {
    useRecordKey(undefined)
    log.warn(
      { error: (error as Error).message },
      'the job store has no record key and cannot make one now: records are sealed with a key of this process only; a job interrupted now is recovered without the secrets its scripts would get',
    )
  }
  // A store that cannot be written is logged once when it starts and once when it ends.
  const registry = new JobRegistry(config.maxJobNumber, store, (problem, error) => {
    if (error === RELOCATED) log.error(RELOCATED.message)
    else if (problem)
      log.error(
        { error: (error as Error | undefined)?.message },
        `${problem}: job records are kept in memory and written when it can be; new jobs are refused (503)`,
      )
    else log.warn('the job store can be written again: every waiting job record is written')
  })
  registry.whenIdle(memoryReleaser(() => registry.running === 0, { before: () => store.releaseMemory() }))
  return { store, registry }
}

function schedulePruning(registry: JobRegistry, config: Config, log: Logger): void {
  const prune = () => {
    const pruned = registry.prune(Date.now(), config.jobRetentionDays * 86_400_000, config.maxJobRecords)
    if (pruned > 0) log.info({ pruned }, 'job records pruned (job_retention_days, max_job_records)')
  }
  // The first pass a second after listening, not before: the store's query for it cost as much
  // as the rest of a start with 1,000 records, and the first poll need not wait for it.
  setTimeout(prune, FIRST_PRUNE_MS).unref()
  setInterval(prune, PRUNE_EVERY_MS).unref()
}

// SIGHUP re-reads the TLS files (certificate rotation). Handled even without TLS: its default
// action would end the agent, and every running job with it; so installed before the agent
// listens and says so (a manager or test may send it as soon as it reads that line).
function reloadTlsOnSighup(api: ApiServer, tls: TlsLoad | undefined, config: Config, log: Logger): void {
  process.on('SIGHUP', () => {
    if (!tls) return log.info('SIGHUP: nothing to reload (plain HTTP)')
    loadTlsMaterial(config).then(
      (reloaded) => {
        if (!reloaded?.ok) return log.error({ error: reloaded?.error }, 'SIGHUP: TLS files not reloaded; the certificates in use stay')
        applyTlsMaterial(api.server as TlsServer, reloaded.material)
        log.info('SIGHUP: TLS certificates reloaded')
      },
      (error: unknown) => log.error({ error: (error as Error).message }, 'SIGHUP: TLS reload failed'),
    )
  })
}

function logListening(api: ApiServer, config: Config, tls: boolean, interrupted: number, log: Logger): void {
  const address = api.server.address()
  const port = typeof address === 'object' && address ? address.port : config.clientPort
  log.info(
    {
      host: config.clientHost,
      port,
      tls,
      clientCertificates: config.tlsClientCaFile !== undefined,
      scriptsPath: config.scriptsPath,
      demo: config.demo,
      interrupted,
    },
    'agent listening',
  )
}

function stopOnSignals(config: Config, registry: JobRegistry, store: JobStore, api: ApiServer, log: Logger, recovery: Promise<void>): void {
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    shutDown(signal, config, registry, log, recovery).then(
      async () => {
        await api.close()
        const unwritten = registry.writeOut()
        if (unwritten > 0) log.error({ unwritten, problem: registry.storeProblem }, 'job records the store did not take are lost at exit')
        try {
          store.close()
        } catch (error) {
          log.error({ error: (error as Error).message }, 'the job store did not close cleanly')
        }
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
async function shutDown(signal: string, config: Config, registry: JobRegistry, log: Logger, recovery: Promise<void>): Promise<void> {
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
loseLinesOnClosedOutput()
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
