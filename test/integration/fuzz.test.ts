// A quick sample of the fuzz campaign (test/fuzz/campaign.ts) inside `npm test`: a few hundred
// generated requests against a real agent. `npm run fuzz` runs the long campaign.
//
// The seed is fixed so CI is repeatable; FUZZ_SEED=<n> tries another one.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runCampaign, startFuzzTarget, summary, type FuzzTarget } from '../fuzz/campaign.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 20261127)
const REQUESTS = 300

describe('fuzz campaign (quick sample)', () => {
  let target: FuzzTarget
  before(async () => {
    target = await startFuzzTarget()
  })
  // stop() also audits the agent's output for every secret the campaign sent.
  after(() => target.stop())

  it(`${REQUESTS} generated requests: no 5xx, no crash, no job from a rejected body, no command from a parameter, no stray file`, async () => {
    const result = await runCampaign(target, { requests: REQUESTS, seed: SEED, concurrency: 8 })
    assert.equal(result.requests, REQUESTS)
    assert.deepEqual(result.violations, [], summary(result))
    assert.ok(result.jobsStarted > 0, 'some generated bodies were valid and started jobs')
    for (const category of ['structured valid', 'structured invalid', 'raw mutation', 'odd method/path', 'broken auth', 'raw socket']) {
      assert.ok((result.byCategory[category] ?? 0) > 0, `no ${category} requests`)
    }
  })
})
