// The secrets a running job's recovery record keeps (storage credentials, secret-named
// parameters: docs/DURABILITY.md) are sealed, not stored as text: AES-256-GCM with a key kept in
// its own file beside the store (`directory_state/record.key`, 0600, created exclusively). A copy
// of jobs.sqlite alone (a support bundle, a backup of the file, a grep) holds no secret in any
// form; whoever can read the key file too can read them, as the agent must after a crash.
import { closeSync, constants, fsyncSync, openSync, readSync, writeSync } from 'node:fs'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { join } from 'node:path'

const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
export const RECORD_KEY_FILE = 'record.key'

/** Set at start by useRecordKey; until then (unit tests) a key of this process only. */
let key: Buffer | undefined

function currentKey(): Buffer {
  key ??= randomBytes(KEY_BYTES)
  return key
}

/**
 * Reads the store's key, or creates it (exclusively, never through a link). Returns a problem
 * when it can do neither (a full disk, a read-only filesystem, a damaged file): the agent then
 * seals with a key of this process only, and a job interrupted now is recovered without the
 * secrets its record held (its scripts get empty values).
 */
export function useRecordKey(directory: string): string | undefined {
  const path = join(directory, RECORD_KEY_FILE)
  try {
    key = readKey(path) ?? createKey(path)
    return undefined
  } catch (error) {
    key = randomBytes(KEY_BYTES)
    return `${path} can be neither read nor created (${(error as Error).message})`
  }
}

function readKey(path: string): Buffer | undefined {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const buffer = Buffer.alloc(KEY_BYTES + 1)
    const read = readSync(fd, buffer, 0, buffer.length, 0)
    if (read !== KEY_BYTES) throw new Error(`it holds ${read} bytes, not ${KEY_BYTES}`)
    return buffer.subarray(0, KEY_BYTES)
  } finally {
    closeSync(fd)
  }
}

function createKey(path: string): Buffer {
  const created = randomBytes(KEY_BYTES)
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  try {
    writeSync(fd, created)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return created
}

/** Seals a JSON value for one job (the job's kind and id are bound to it). */
export function seal(value: unknown, job: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', currentKey(), iv)
  cipher.setAAD(Buffer.from(job))
  const sealed = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64')
}

/** The sealed value, or undefined when it cannot be opened (another key, damaged, another job). */
export function unseal(text: string, job: string): unknown {
  try {
    const bytes = Buffer.from(text, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', currentKey(), bytes.subarray(0, IV_BYTES))
    decipher.setAAD(Buffer.from(job))
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return JSON.parse(Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8'))
  } catch {
    return undefined
  }
}
