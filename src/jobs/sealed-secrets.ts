// The secrets a running job's recovery record keeps (storage credentials, secret-named
// parameters: docs/DURABILITY.md) are sealed, never stored as text: AES-256-GCM, bound to the
// job, with a key the store keeps in a table of its own. Reading the records (a support query, a
// grep, a record pasted into a ticket) shows no secret in any form; whoever can read the whole
// store file can unseal them, as the agent must after a crash: directory_state stays 0700.
import { crypto } from '../util/builtins.ts'

const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

/** Set at start by useRecordKey; until then (unit tests) a key of this process only. */
let key: Buffer | undefined

function currentKey(): Buffer {
  key ??= crypto().randomBytes(KEY_BYTES)
  return key
}

/**
 * The store's key (JobStore.recordKey). Without one (a store that cannot be written yet) the
 * agent seals with a key of this process only, and a job interrupted then is recovered without
 * the secrets its record held (its scripts get empty values).
 */
export function useRecordKey(storeKey: Buffer | undefined): void {
  key = storeKey ?? crypto().randomBytes(KEY_BYTES)
}

/** Seals a JSON value for one job (the job's kind and id are bound to it). */
export function seal(value: unknown, job: string): string {
  const iv = crypto().randomBytes(IV_BYTES)
  const cipher = crypto().createCipheriv('aes-256-gcm', currentKey(), iv)
  cipher.setAAD(Buffer.from(job))
  const sealed = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64')
}

/** The sealed value, or undefined when it cannot be opened (another key, damaged, another job). */
export function unseal(text: string, job: string): unknown {
  try {
    const bytes = Buffer.from(text, 'base64')
    const decipher = crypto().createDecipheriv('aes-256-gcm', currentKey(), bytes.subarray(0, IV_BYTES))
    decipher.setAAD(Buffer.from(job))
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return JSON.parse(Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8'))
  } catch {
    return undefined
  }
}
