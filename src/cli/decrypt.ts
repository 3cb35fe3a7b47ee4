// `osb-backup-agent decrypt`: decodes a streamed (`.osb`) backup by hand, with no agent running:
// checks the header, authenticates and decrypts every frame, decompresses. The key is the same
// string a restore request would carry (a passphrase, or the PEM private key of the key pair).
import { createReadStream, createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createDecoder } from '../integrity/codec.ts'

export interface DecryptInput {
  /** A file path, or undefined / '-' for standard input. */
  input: string | undefined
  /** A file path, or undefined / '-' for standard output. */
  output: string | undefined
  /** A file holding the key; else the environment variable OSB_ENCRYPTION_KEY; else none. */
  keyFile: string | undefined
  env: Record<string, string | undefined>
  stdin: Readable
  stdout: Writable
}

export async function decrypt(options: DecryptInput): Promise<void> {
  const key = options.keyFile ? (await readFile(options.keyFile, 'utf8')).replace(/\r?\n$/, '') : (options.env.OSB_ENCRYPTION_KEY ?? '')
  const source = options.input && options.input !== '-' ? createReadStream(options.input) : options.stdin
  const target = options.output && options.output !== '-' ? createWriteStream(options.output, { mode: 0o600 }) : options.stdout
  await pipeline(source, createDecoder(key), target)
}
