// The `osb-backup-agent` command's entry point (bin/osb-backup-agent runs it with Node 24).
import { runCli, type Io } from './main.ts'

const io: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(text),
  tty: process.stderr.isTTY === true,
  env: process.env,
  cwd: process.cwd(),
}

runCli(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`osb-backup-agent: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  },
)
