// The `osb-backup-agent` command's entry point (bin/osb-backup-agent runs it with Node 24).
// Imports are dynamic: the compile cache must be on before any module of ours is compiled, and
// `serve` loads the agent without the client commands' modules (start-up, docs/PERFORMANCE.md).
import { lstatSync, mkdirSync } from 'node:fs'
import { enableCompileCache } from 'node:module'
import { fileURLToPath } from 'node:url'
import { INSTALL_ROOT } from '../install-root.ts'
import type { Io } from './main.ts'

/**
 * V8's compiled code for our modules and our dependencies, kept between starts beside the
 * installation (`.cache/` of the release or the checkout): a start compiles nothing it compiled
 * before. Used only when the folder is ours, a real folder, and no one else may write in it (the
 * agent runs as root, and a planted cache entry would be code it runs); otherwise every start
 * compiles, as without a cache.
 */
function useCompileCache(): void {
  const dir = fileURLToPath(new URL('.cache/compile', INSTALL_ROOT))
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const own = (path: string) => {
      const stat = lstatSync(path)
      return stat.isDirectory() && stat.uid === process.getuid?.() && (stat.mode & 0o022) === 0
    }
    if (own(dir) && own(fileURLToPath(new URL('.cache', INSTALL_ROOT)))) enableCompileCache(dir)
  } catch {
    // a read-only installation: no cache
  }
}

useCompileCache()
const argv = process.argv.slice(2)
if (argv.length === 1 && argv[0] === 'serve') {
  await import('../main.ts') // the agent exits the process itself
} else {
  const { runCli } = await import('./main.ts')
  const io: Io = {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(text),
    tty: process.stderr.isTTY === true,
    env: process.env,
    cwd: process.cwd(),
  }
  runCli(argv, io).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`osb-backup-agent: ${(error as Error).stack ?? String(error)}\n`)
      process.exitCode = 1
    },
  )
}
