import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { newJob } from '../../../src/jobs/job.ts'
import { pollingBody } from '../../../src/jobs/job.ts'
import type { JobRequest } from '../../../src/jobs/request.ts'
import { transferOptions } from '../../../src/jobs/transfer.ts'

const request: JobRequest = {
  kind: 'backup',
  id: 'j',
  compression: false,
  encryptionKey: '',
  destination: {
    type: 'S3',
    bucket: 'b',
    endpoint: 'e',
    endpointUrl: 'https://e',
    useSSL: true,
    region: undefined,
    authKey: 'k',
    authSecret: 's',
    skipStorage: false,
    filenamePrefix: '',
    filename: '',
  },
  database: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: {} },
}

describe('transferOptions', () => {
  it('reports progress in the polling body, publishing at most once a second, and counts attempts', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 })
    const job = newJob(request, [])
    let published = 0
    const options = transferOptions(job, () => published++, undefined, 1000)
    assert.deepEqual(pollingBody(job).progress, { bytes_done: 0, bytes_total: 1000, bytes_per_second: 0 })
    t.mock.timers.tick(500)
    options.onProgress?.(100)
    options.onProgress?.(200)
    assert.equal(published, 1, 'the first report is published, the second within the same second is not')
    t.mock.timers.tick(1500)
    options.onProgress?.(1000)
    assert.equal(published, 2)
    assert.deepEqual(pollingBody(job).progress, { bytes_done: 1000, bytes_total: 1000, bytes_per_second: 500 })
    options.onRequest?.()
    options.onRequest?.()
    assert.equal(pollingBody(job).attempts, 2)
  })
})
