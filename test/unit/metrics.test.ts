import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Job } from '../../src/jobs/job.ts'
import type { Stage } from '../../src/jobs/stage-context.ts'
import { AgentMetrics } from '../../src/metrics.ts'
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.ts'

const job = (status: string, filesize = 0) =>
  ({ kind: 'backup', status, filesize, request: { destination: { type: 'S3' } } }) as unknown as Job
const transfer = { name: 'upload', kind: 'transfer' } as Stage

/** Every family the agent exposed with prom-client (its default metrics included), with its type: dashboards use them. */
const FAMILIES: Record<string, string> = {
  process_cpu_user_seconds_total: 'counter',
  process_cpu_system_seconds_total: 'counter',
  process_cpu_seconds_total: 'counter',
  process_start_time_seconds: 'gauge',
  process_resident_memory_bytes: 'gauge',
  process_virtual_memory_bytes: 'gauge',
  process_heap_bytes: 'gauge',
  process_open_fds: 'gauge',
  process_max_fds: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
  nodejs_eventloop_lag_min_seconds: 'gauge',
  nodejs_eventloop_lag_max_seconds: 'gauge',
  nodejs_eventloop_lag_mean_seconds: 'gauge',
  nodejs_eventloop_lag_stddev_seconds: 'gauge',
  nodejs_eventloop_lag_p50_seconds: 'gauge',
  nodejs_eventloop_lag_p90_seconds: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_eventloop_utilization: 'gauge',
  nodejs_active_resources: 'gauge',
  nodejs_active_resources_total: 'gauge',
  nodejs_active_handles: 'gauge',
  nodejs_active_handles_total: 'gauge',
  nodejs_active_requests: 'gauge',
  nodejs_active_requests_total: 'gauge',
  nodejs_heap_size_total_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_external_memory_bytes: 'gauge',
  nodejs_heap_space_size_total_bytes: 'gauge',
  nodejs_heap_space_size_used_bytes: 'gauge',
  nodejs_heap_space_size_available_bytes: 'gauge',
  nodejs_version_info: 'gauge',
  nodejs_gc_duration_seconds: 'histogram',
  jobs_started_total: 'counter',
  jobs_finished_total: 'counter',
  jobs_running: 'gauge',
  stage_duration_seconds: 'histogram',
  transfer_bytes_total: 'counter',
  transfer_duration_seconds: 'histogram',
  job_failures_total: 'counter',
}
const P = 'osb_backup_agent_'

describe('AgentMetrics', () => {
  it('counts each event with the values of that moment', async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [] })
    const running = job('RUNNING', 5)
    metrics.jobStarted(running)
    metrics.stageFinished(running, transfer, 2, undefined)
    running.filesize = 999 // changes after the event do not count
    metrics.jobInterrupted('restore')
    metrics.jobFinished(job('SUCCEEDED'), undefined)
    const { contentType, text } = await metrics.render()
    assert.match(contentType, /^text\/plain/)
    assert.match(text, /^osb_backup_agent_jobs_started_total\{kind="backup"\} 1$/m)
    assert.match(text, /^osb_backup_agent_jobs_finished_total\{kind="restore",status="FAILED"\} 1$/m)
    assert.match(text, /^osb_backup_agent_jobs_finished_total\{kind="backup",status="SUCCEEDED"\} 1$/m)
    assert.match(text, /^osb_backup_agent_transfer_bytes_total\{backend="s3",direction="upload"\} 5$/m)
    assert.match(text, /^osb_backup_agent_job_failures_total\{kind="restore",reason="interrupted"\} 1$/m)
  })

  it('counts every event, between scrapes too', async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [] })
    await metrics.render()
    metrics.jobStarted(job('RUNNING'))
    metrics.jobStarted(job('RUNNING'))
    assert.match((await metrics.render()).text, /^osb_backup_agent_jobs_started_total\{kind="backup"\} 2$/m)
    metrics.jobFinished(job('SUCCEEDED'), undefined)
    metrics.jobFinished(job('SUCCEEDED'), undefined)
  })

  it('exposes every family prom-client did, with its type, in text the format allows', async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [{ kind: 'restore' }] as never })
    const running = job('RUNNING', 7)
    metrics.jobStarted(running)
    metrics.stageFinished(running, { name: 'backup', kind: 'main' } as Stage, 0.3, undefined)
    metrics.stageFinished(running, transfer, 1.5, undefined)
    metrics.jobFinished(job('FAILED'), 'storage')
    const families = parsePrometheusText((await metrics.render()).text)
    const types = new Map(families.map((f) => [f.name, f.type]))
    for (const [name, type] of Object.entries(FAMILIES)) assert.equal(types.get(P + name), type, `${P}${name}`)
    for (const f of families) assert.ok(f.help, `${f.name} has a HELP line`)
    assert.equal(sampleValue(families, `${P}jobs_running`, { kind: 'restore' }), 1)
    assert.equal(sampleValue(families, `${P}jobs_running`, { kind: 'backup' }), 0)
    assert.equal(
      sampleValue(families, `${P}stage_duration_seconds_bucket`, { kind: 'backup', stage: 'backup', outcome: 'ok', le: '0.5' }),
      1,
    )
    assert.equal(
      sampleValue(families, `${P}stage_duration_seconds_bucket`, { kind: 'backup', stage: 'backup', outcome: 'ok', le: '0.1' }),
      0,
    )
    assert.equal(sampleValue(families, `${P}transfer_duration_seconds_bucket`, { backend: 's3', direction: 'upload', le: '86400' }), 1)
    assert.equal(sampleValue(families, `${P}job_failures_total`, { kind: 'backup', reason: 'storage' }), 1)
    assert.ok((sampleValue(families, `${P}process_resident_memory_bytes`) ?? 0) > 1e6)
    assert.ok((sampleValue(families, `${P}process_open_fds`) ?? 0) > 0)
    assert.ok((sampleValue(families, `${P}process_cpu_seconds_total`) ?? 0) > 0)
    assert.ok((sampleValue(families, `${P}nodejs_heap_size_used_bytes`) ?? 0) > 0)
    const start = sampleValue(families, `${P}process_start_time_seconds`) ?? 0
    assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) <= 1, `start time ${start}`)
    assert.equal(
      sampleValue(families, `${P}nodejs_version_info`, {
        version: process.version,
        ...Object.fromEntries(['major', 'minor', 'patch'].map((k, i) => [k, process.versions.node.split('.')[i] as string])),
      }),
      1,
    )
    const utilization = sampleValue(families, `${P}nodejs_eventloop_utilization`) ?? -1
    assert.ok(utilization >= 0 && utilization <= 1, `utilization ${utilization}`)
  })

  it('runs no timer while no job runs; samples the event-loop delay while one does', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const before = timers()
    const live: { kind: string }[] = []
    const metrics = new AgentMetrics({ liveJobs: () => live as never })
    await metrics.render()
    assert.equal(metrics.samplingEventLoop, false)
    assert.equal(timers(), before, 'no timer of the metrics while idle')
    const families0 = parsePrometheusText((await metrics.render()).text)
    assert.equal(sampleValue(families0, `${P}nodejs_eventloop_lag_p99_seconds`), 0, 'no job ran: no delay recorded')
    assert.ok((sampleValue(families0, `${P}nodejs_eventloop_lag_seconds`) ?? -1) >= 0, 'measured at the scrape')

    live.push({ kind: 'backup' }, { kind: 'backup' })
    metrics.jobStarted(job('RUNNING'))
    metrics.jobStarted(job('RUNNING'))
    assert.equal(metrics.samplingEventLoop, true)
    let max = 0
    for (let tries = 0; max === 0 && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 25))
      max = sampleValue(parsePrometheusText((await metrics.render()).text), `${P}nodejs_eventloop_lag_max_seconds`) ?? 0
    }
    assert.ok(max >= 0.009, `a delay is recorded while a job runs (each sample spans the 10 ms interval): ${max}`)
    live.pop()
    metrics.jobFinished(job('SUCCEEDED'), undefined)
    assert.equal(metrics.samplingEventLoop, true, 'one job still runs')
    live.pop()
    metrics.jobFinished(job('SUCCEEDED'), undefined)
    assert.equal(metrics.samplingEventLoop, false)
    assert.equal(timers(), before, 'the sampler is gone with the last job')
    metrics.jobFinished(job('SUCCEEDED'), undefined) // more finishes than starts change nothing
    assert.equal(metrics.samplingEventLoop, false)
    await metrics.render() // resets what the last job recorded
    assert.equal(
      sampleValue(parsePrometheusText((await metrics.render()).text), `${P}nodejs_eventloop_lag_max_seconds`),
      0,
      'reset at every scrape',
    )
  })

  it("stops sampling at a scrape that finds no job running, even if a job's end was never reported", async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [] })
    metrics.jobStarted(job('RUNNING')) // and never jobFinished
    assert.equal(metrics.samplingEventLoop, true)
    await metrics.render()
    assert.equal(metrics.samplingEventLoop, false)
    metrics.jobStarted(job('RUNNING'))
    assert.equal(metrics.samplingEventLoop, true, 'a job started after it is sampled again')
    metrics.jobFinished(job('SUCCEEDED'), undefined)
    assert.equal(metrics.samplingEventLoop, false, 'and its end stops it (the count started again from none)')
  })
})
