// `osb-backup-agent decrypt`: decodes a streamed (`.osb`) backup by hand, with no agent running:
// checks the header, authenticates and decrypts every frame, decompresses, and checks the
// SHA-256 trailer (version 2) before it ends. The key is the same string a restore request would
// carry (a passphrase, or the PEM private key of the key pair).
import { createReadStream, createWriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createDecoder } from '../integrity/codec.ts'
import { encryptionKeyFrom } from './key.ts'

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
  const key = (await encryptionKeyFrom(options.keyFile, options.env)) ?? ''
  const source = options.input && options.input !== '-' ? createReadStream(options.input) : options.stdin
  const outputFile = options.output !== '-' ? options.output : undefined
  const target = outputFile !== undefined ? createWriteStream(outputFile, { mode: 0o600 }) : options.stdout
  try {
    await pipeline(source, createDecoder(key, { what: options.input && options.input !== '-' ? options.input : 'standard input' }), target)
  } catch (error) {
    // No unverified dump is left behind under the name the operator asked for.
    if (outputFile !== undefined) await rm(outputFile, { force: true })
    throw error
  }
}
