// `npm run fuzz`: the long fuzz campaign against a real agent process (test/fuzz/campaign.ts).
//
//   npm run fuzz                          10,000 requests, a random seed
//   npm run fuzz -- --requests 50000 --seed 1234 --concurrency 16
//
// Prints a summary and exits non-zero on any violation (or a crash of the campaign itself).
import { parseArgs } from 'node:util'
import { runCampaign, startFuzzTarget, summary } from './campaign.ts'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    seed: { type: 'string', default: String(Math.floor(Math.random() * 2 ** 31)) },
    concurrency: { type: 'string', default: '16' },
  },
})
const requests = Number(values.requests)
const seed = Number(values.seed)
const concurrency = Number(values.concurrency)
if (!Number.isInteger(requests) || requests < 1 || !Number.isInteger(seed) || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write('usage: npm run fuzz -- [--requests N] [--seed N] [--concurrency N]\n')
  process.exit(2)
}

process.stdout.write(`fuzz campaign: ${requests} requests, seed ${seed} (replay with --seed ${seed}), ${concurrency} in flight\n`)
const target = await startFuzzTarget()
let failed = false
try {
  const result = await runCampaign(target, { requests, seed, concurrency, progress: (line) => process.stdout.write(`  … ${line}\n`) })
  // Stopping the agent also audits its output for every secret the campaign sent.
  try {
    await target.stop()
  } catch (error) {
    result.violations.push(`secret audit: ${(error as Error).message}`)
  }
  process.stdout.write(`${summary(result)}\n`)
  failed = result.violations.length > 0 || result.requests < requests
} catch (error) {
  process.stderr.write(`fuzz campaign failed: ${(error as Error).stack}\n`)
  await target.stop().catch(() => {})
  failed = true
}
process.stdout.write(failed ? 'FUZZ: FAILED\n' : 'FUZZ: PASSED\n')
process.exit(failed ? 1 : 0)
