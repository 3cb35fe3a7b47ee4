// A stand-in agent that is SIGKILLed at one exact instant of a backup: the real runner, store and
// script helper, and a registry whose publish() kills the process right after the store took a
// write that names the given stage's script, either still held (`held`: between the pid's write
// and `go`, the window a held script closes), the same with the script helper stopped first
// (`held-stopped`: so that the held child is still there when recovery looks), or seen to run
// (`running`). No hook in src: the instant is the store write itself. argv: <root> <stage>
// <moment>; prints the script's pid (`pid <n>`) and the helper's (`helper <n>`) before it dies.
// The root holds scripts/, b/ and state/ (test/unit/jobs/held-crash.test.ts).
import { join } from 'node:path'
import { writeSync } from 'node:fs'
import type { Job } from '../../src/jobs/job.ts'
import { newJob } from '../../src/jobs/job.ts'
import { JobRegistry } from '../../src/jobs/registry.ts'
import { runJob } from '../../src/jobs/runner.ts'
import { logFields } from '../../src/jobs/stages.ts'
import { JobStore } from '../../src/jobs/store.ts'
import { createLogger } from '../../src/log.ts'
import { configUnder, helperChildren } from './processes.ts'

const [root = '', stage = '', moment = ''] = process.argv.slice(2)
const config = configUnder(root)
const registry = new JobRegistry(2, new JobStore(join(root, 'state')))
const publish = registry.publish.bind(registry)
registry.publish = (job: Job, ...rest) => {
  const written = publish(job, ...rest)
  const script = job.script
  if (written && script?.stage === stage && moment.startsWith('held') === (script.held === true)) {
    writeSync(1, `pid ${script.pid}\n`)
    for (const helper of helperChildren()) {
      writeSync(1, `helper ${helper}\n`)
      if (moment === 'held-stopped') process.kill(helper, 'SIGSTOP')
    }
    process.kill(process.pid, 'SIGKILL')
  }
  return written
}

const job = newJob(
  {
    kind: 'backup',
    id: 'crash',
    compression: false,
    encryptionKey: '',
    destination: { type: 'LOCAL', skipStorage: true, filenamePrefix: '', filename: '' },
    database: { host: 'h', username: 'u', password: 'p', database: 'd', parameters: {} },
  },
  logFields('backup'),
)
const entry = registry.start(job)
if (typeof entry === 'string') throw new Error(`not started: ${entry}`)
await runJob(job, entry.live.cancel.signal, { config, registry, log: createLogger('silent'), agentEnv: {} })
writeSync(1, 'finished without dying\n')
