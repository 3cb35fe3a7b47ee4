// Runs the `osb-backup-agent` command (bin/osb-backup-agent) as a process, as a user would.
import { spawn } from 'node:child_process'

export const CLI = new URL('../../bin/osb-backup-agent', import.meta.url).pathname

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; bin?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.bin ?? CLI, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => {
      process.kill(child.pid as number, 'SIGKILL')
      reject(new Error(`osb-backup-agent ${args.join(' ')} did not end in time:\n${stdout}\n${stderr}`))
    }, options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
