import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Job } from '../../src/jobs/job.ts'
import type { Stage } from '../../src/jobs/stages.ts'
import { AgentMetrics } from '../../src/metrics.ts'

const job = (status: string, filesize = 0) => ({ kind: 'backup', status, filesize, request: { destination: { type: 'S3' } } }) as unknown as Job
const transfer = { name: 'upload', kind: 'transfer' } as Stage

describe('AgentMetrics', () => {
  it('counts what happened before prom-client was loaded, with the values of that moment', async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [] })
    const running = job('RUNNING', 5)
    metrics.jobStarted(running)
    metrics.stageFinished(running, transfer, 2, undefined)
    running.filesize = 999 // changes after the event must not reach the queued update
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

  it('counts at once once loaded', async () => {
    const metrics = new AgentMetrics({ liveJobs: () => [] })
    await metrics.render()
    metrics.jobStarted(job('RUNNING'))
    metrics.jobStarted(job('RUNNING'))
    assert.match((await metrics.render()).text, /^osb_backup_agent_jobs_started_total\{kind="backup"\} 2$/m)
  })
})
