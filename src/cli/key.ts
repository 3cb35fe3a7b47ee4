// The encryption key a command sends or uses: from a file (--key-file) or the environment
// (OSB_ENCRYPTION_KEY), never from a flag value, which `ps` and the shell history would show.
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { CliError, EXIT } from './client.ts'

/** A passphrase or a PEM key (an RSA-4096 private key is ~3.3 KB): anything larger is not a key file. */
export const MAX_KEY_FILE_BYTES = 64 * 1024

/** The key: the file's text without its final newline, else OSB_ENCRYPTION_KEY, else undefined. */
export async function encryptionKeyFrom(keyFile: string | undefined, env: Record<string, string | undefined>): Promise<string | undefined> {
  if (keyFile === undefined) return env.OSB_ENCRYPTION_KEY
  // The messages name the file, never its content.
  let text: string
  try {
    // Not through a link (the CLI runs as root from a timer), and a FIFO does not block the open.
    const file = await open(keyFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    try {
      if (!(await file.stat()).isFile()) throw new CliError(`--key-file ${keyFile} is not a regular file`, EXIT.usage)
      // Read with a bound, not to the end: the file may grow after a size check.
      const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1)
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0)
      if (bytesRead > MAX_KEY_FILE_BYTES)
        throw new CliError(`--key-file ${keyFile} is larger than ${MAX_KEY_FILE_BYTES} bytes: not a key file`, EXIT.usage)
      text = buffer.subarray(0, bytesRead).toString('utf8')
    } finally {
      await file.close()
    }
  } catch (error) {
    if (error instanceof CliError) throw error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ELOOP') throw new CliError(`--key-file ${keyFile} is a symbolic link: give the file itself`, EXIT.usage)
    throw new CliError(`cannot read --key-file ${keyFile}: ${code ?? (error as Error).message}`, EXIT.usage)
  }
  const key = text.replace(/\r?\n$/, '')
  if (key === '') throw new CliError(`--key-file ${keyFile} is empty`, EXIT.usage)
  return key
}
