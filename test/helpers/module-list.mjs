// Preloaded into an agent by a test (NODE_OPTIONS=--import=…): on SIGUSR2 the process writes the
// built-in modules it has loaded so far (process.moduleLoadList) to OSB_TEST_MODULE_LIST.
import { writeFileSync } from 'node:fs'

process.on('SIGUSR2', () => writeFileSync(process.env.OSB_TEST_MODULE_LIST, process.moduleLoadList.join('\n')))
