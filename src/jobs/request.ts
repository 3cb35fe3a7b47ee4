// A validated trigger body, in the shape the job engine works with. Built only by
// src/http/trigger.ts; every field here has passed the checks of SPEC §3.

export type JobKind = 'backup' | 'restore' | 'verify'
/** Every kind, in the order the API lists them. */
export const JOB_KINDS: readonly JobKind[] = ['backup', 'restore', 'verify']

export interface S3Destination {
  type: 'S3'
  bucket: string
  /** The endpoint as the request gave it (or the configured default), echoed in polling bodies. */
  endpoint: string
  /** Absolute URL with the scheme the rules of SPEC §3 chose. */
  endpointUrl: string
  useSSL: boolean
  /** Absent: the client discovers the bucket's region. */
  region: string | undefined
  authKey: string
  authSecret: string
}

export interface SwiftDestination {
  type: 'SWIFT'
  authUrl: string
  domain: string
  projectName: string
  containerName: string
  username: string
  password: string
}

/** Objects in a folder of this machine (local_storage_root): the demo, and tests without a cloud. */
export interface LocalDestination {
  type: 'LOCAL'
}

export type StorageDestination = S3Destination | SwiftDestination | LocalDestination

export type Destination = StorageDestination & {
  skipStorage: boolean
  /** Echoed exactly as received; for S3 it is the key prefix. */
  filenamePrefix: string
  /** Restore only: the object to fetch, without the prefix ('' with skipStorage and none given). */
  filename: string
}

export interface DatabaseTarget {
  host: string
  username: string
  password: string
  database: string
  /** Request parameters, already rendered as environment values. */
  parameters: Record<string, string>
}

export interface JobRequest {
  /** A verify job's request has no database (its `database` is empty) and always a storage. */
  kind: JobKind
  id: string
  compression: boolean
  /** '' when the request had none or null; "none" is kept as given. */
  encryptionKey: string
  destination: Destination
  database: DatabaseTarget
}

/**
 * Names that say a value is secret, in any case and anywhere in the name: `db_pass`, `pgpassword`,
 * `mysql_pwd`, `passphrase`, `api_key`, `redis_auth`, `credentials`, `private_pem`… Broad on
 * purpose: a non-secret value masked costs a log some readability, a secret missed leaks.
 */
const SECRET_PARAMETER = /secret|pass|pwd|token|key|auth|cred|private/i

/** Parameters whose name says they hold a secret are masked and never stored after a job. */
export function isSecretParameter(name: string): boolean {
  return SECRET_PARAMETER.test(name)
}

/**
 * The values of a request that must never appear in logs or polling bodies: the database and
 * storage passwords, the encryption key and parameters whose name says they are secret.
 */
export function requestSecrets(request: JobRequest): string[] {
  const d = request.destination
  const secrets = [
    request.database.password,
    request.encryptionKey === 'none' ? '' : request.encryptionKey,
    d.type === 'S3' ? d.authSecret : d.type === 'SWIFT' ? d.password : '',
  ]
  for (const [key, value] of Object.entries(request.database.parameters)) {
    if (isSecretParameter(key)) secrets.push(value)
  }
  return secrets.filter((s) => s !== '').flatMap((s) => [s, ...pemPieces(s)])
}

/** A PEM body line is 64 characters; shorter pieces (a key's last line) are still 16 or more. */
const MIN_PEM_PIECE = 16

/**
 * The pieces of a PEM key (a private key as encryption_key, a TLS key in a parameter) that tools
 * print on their own: each base64 line (`grep -v BEGIN`, `head -3`, an error quoting one line)
 * and the body on one line (`base64 -w0`-style, a key pasted into JSON without its newlines).
 * Each is key material; the key whole is masked as a secret of its own.
 */
export function pemPieces(secret: string): string[] {
  const pieces: string[] = []
  for (const block of secret.matchAll(/-----BEGIN [^-\r\n]+-----([\s\S]*?)-----END [^-\r\n]+-----/g)) {
    const lines = (block[1] ?? '')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => /^[A-Za-z0-9+/=]+$/.test(l))
    pieces.push(...lines.filter((l) => l.length >= MIN_PEM_PIECE))
    if (lines.length > 1) pieces.push(lines.join(''))
  }
  return pieces
}
