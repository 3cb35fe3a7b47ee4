// Trigger bodies as evoila's backup manager sends them (SPEC §1): the documented keys plus the
// extra keys it carries (nested serviceInstance, idAsString, a duplicated type, nulls).

export const DB_PASSWORD = 'db-pass-Xq93-secret'
export const ENCRYPTION_KEY = 'enc-key-Pz71-secret'

export function managerId(): string {
  const hex = [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex}0`
}

export interface S3Target {
  hostPort: string
  accessKey: string
  secretKey: string
  bucket: string
}

export function s3Destination(s3: S3Target, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'S3',
    bucket: s3.bucket,
    endpoint: s3.hostPort,
    region: null,
    useSSL: false,
    authKey: s3.accessKey,
    authSecret: s3.secretKey,
    filenamePrefix: 'backups/',
    skipStorage: false,
    ...extra,
  }
}

export function managerBackupBody(
  id: string,
  destination: Record<string, unknown>,
  database: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id,
    idAsString: id,
    compression: false,
    encryption_key: ENCRYPTION_KEY,
    type: destination.type,
    destination,
    backup: {
      host: '10.0.0.12',
      username: 'backup-user',
      password: DB_PASSWORD,
      database: 'orders',
      parameters: null,
      ...database,
    },
    serviceInstance: { id: 'si-1', name: 'my-db', plan: { id: 'p', name: 'small' }, port: 5432 },
    name: 'my-db',
    port: 5432,
    backupUsername: 'backup-user',
    backupPassword: DB_PASSWORD,
  }
}

export function managerRestoreBody(
  id: string,
  destination: Record<string, unknown>,
  database: Record<string, unknown> = {},
): Record<string, unknown> {
  const body = managerBackupBody(id, destination, database)
  body.restore = body.backup
  delete body.backup
  return body
}

/** An S3 destination with skipStorage: no server needed, the fields go to the scripts. */
export function skipStorageDestination(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'S3',
    skipStorage: true,
    bucket: 'b',
    authKey: 'ak',
    authSecret: 'storage-secret-S5',
    endpoint: '127.0.0.1:1',
    filenamePrefix: 'backups/',
    ...extra,
  }
}
