// Schemas of what the API answers, for the OpenAPI document (GET /openapi.json) and the docs
// page, as plain JSON Schema data. They describe; they neither validate nor serialise (the
// bodies stay exactly as the old agent's managers expect them).
import { array, boolean, integer, literal, nullType, object, optional, string, union, type JsonSchema } from './json-schema.ts'
import { STAGE_TABLE, logFields } from '../jobs/stage-names.ts'
import type { JobKind } from '../jobs/request.ts'

const STATUS = union([literal('RUNNING'), literal('SUCCEEDED'), literal('FAILED')], {
  description: 'RUNNING until the job ends, then SUCCEEDED or FAILED',
})
const TIMESTAMP = 'UTC, `YYYY-MM-DDTHH:MM:SS+00:00`'

export const MessageSchema = object({ message: string({ description: 'what happened, for a person' }) }, { description: 'a message' })

const stageNames = (kind: JobKind) => STAGE_TABLE[kind].map((s) => `\`${s.name}\``).join(', ')

/** What the storage clean-up after a successful backup reports (src/jobs/storage-hygiene.ts). */
const storageGcFields: Record<string, JsonSchema> = {
  storage_gc_log: optional(
    string({ description: 'the storage clean-up after the backup: what it reclaimed, and its problems (they never fail the backup)' }),
  ),
  storage_reclaimed: optional(
    object(
      { objects: integer({ description: 'objects removed' }), bytes: integer({ description: 'bytes they held' }) },
      { description: 'what the storage clean-up after the backup removed (present once it ran)' },
    ),
  ),
}

/** What every kind may report about the stored object and a transfer in progress. */
const objectFields: Record<string, JsonSchema> = {
  checksum: optional(
    object(
      { algorithm: literal('sha256'), value: string({ description: 'hex' }) },
      { description: "the object's SHA-256: computed for a backup, read from the object for a restore or verify (present once known)" },
    ),
  ),
  checksum_verified: optional(
    boolean({ description: 'restore, verify (and a backup with verify_after_upload): whether the bytes read matched a stored digest' }),
  ),
  progress: optional(
    object(
      {
        bytes_done: integer(),
        bytes_total: union([integer(), nullType()], { description: 'null while unknown' }),
        bytes_per_second: integer(),
      },
      { description: 'while a transfer or verify read runs' },
    ),
  ),
}

const NULLABLE_INTEGER = (description: string) => union([integer(), nullType()], { description })

/** What a verify read found (src/integrity/verify.ts): verify jobs, and backups with verify_after_upload. */
const verificationFields: Record<string, JsonSchema> = {
  verification: optional(
    object(
      {
        bytes_read: integer({ description: 'bytes of the object read so far' }),
        format: union([literal('osb'), literal('file')], {
          description: '`osb`: a streamed backup, decoded too; `file`: any other object, checked by its SHA-256 alone',
        }),
        format_version: optional(integer({ description: '.osb header version (2: with a SHA-256 trailer)' })),
        compression: optional(string({ description: '.osb: none, zstd or gzip' })),
        encryption: optional(string({ description: '.osb: none, passphrase, x25519 or rsa-oaep' })),
        frames_authenticated: NULLABLE_INTEGER(
          'encrypted frames whose tag checked out; null when none could be checked (no encryption, or no key)',
        ),
        decoded_bytes: optional(integer({ description: '.osb: bytes of the decoded dump, once decoded to its end' })),
        failure: optional(
          object(
            {
              check: string({ description: 'checksum, format, key, frame or compression' }),
              message: string(),
              offset: NULLABLE_INTEGER('byte offset in the object where it failed; null when a digest over the whole object failed'),
              frame: NULLABLE_INTEGER('the encrypted frame (0-based) that failed, if one did'),
            },
            { description: 'what failed and where (absent when every check passed)' },
          ),
        ),
      },
      { description: 'what reading the stored object found' },
    ),
  ),
}

/** The polling body of GET /<kind>/{id}: every field the agent may put in it. */
export function pollingBodySchema(kind: JobKind): JsonSchema {
  const logs: Record<string, JsonSchema> = {}
  for (const field of logFields(kind)) {
    const stage = field.replace(/_(log|errorlog)$/, '').replaceAll('_', '-')
    const stream = field.endsWith('_errorlog') ? 'stderr' : 'stdout'
    logs[field] = string({
      description: `the last script_log_max_bytes of the ${stage} script's ${stream}, secrets masked; '' until it ran`,
    })
  }
  return object(
    {
      status: STATUS,
      message: string({ description: `"${kind} is running", "${kind} successfully carried out" or "${kind} failed"` }),
      state: string({ description: `the running stage (${stageNames(kind)}), \`starting\` before the first, \`finished\` at the end` }),
      error_message: optional(string({ description: 'why the job failed (present only then); cleanup and unlock problems are appended' })),
      type: string({ description: 'destination type as requested: S3, SWIFT or LOCAL' }),
      compression: boolean({ description: "the request's compression flag, passed to the scripts" }),
      skip_storage: boolean({ description: 'true when the scripts move the file themselves (no upload or download stage)' }),
      useSSL: optional(boolean({ description: 'S3 and SWIFT: whether the storage endpoint is reached over HTTPS' })),
      skipSSL: optional(boolean({ description: 'S3 and SWIFT: the opposite of useSSL' })),
      endpoint: optional(string({ description: 'S3: the endpoint as requested (or default_s3_endpoint)' })),
      bucket: optional(string({ description: 'S3: the bucket' })),
      region: optional(string({ description: 'S3: the region, when the request gave one' })),
      authUrl: optional(string({ description: 'SWIFT: the Keystone or Swift auth URL' })),
      domain: optional(string({ description: 'SWIFT: the Keystone domain' })),
      container_name: optional(string({ description: 'SWIFT: the container' })),
      project_name: optional(string({ description: 'SWIFT: the Keystone project' })),
      filenamePrefix: string({ description: 'exactly as received; S3 key prefix, LOCAL folder' }),
      filename: string({
        description:
          kind === 'backup'
            ? "the file the backup script wrote (the object name without the prefix); '' until then"
            : kind === 'restore'
              ? 'the object restored'
              : 'the object verified',
      }),
      filesize: object(
        { size: integer({ description: 'bytes' }), unit: literal('byte', { description: 'always "byte"' }) },
        {
          description: { backup: 'size of the backup file', restore: 'size of the downloaded file', verify: 'bytes of the object read' }[
            kind
          ],
        },
      ),
      start_time: string({ description: `when the job started, ${TIMESTAMP}` }),
      end_time: string({ description: `when it ended, ${TIMESTAMP}; '' while running` }),
      execution_time_ms: integer({ description: 'end_time − start_time in milliseconds; 0 while running' }),
      attempts: optional(integer({ description: 'requests the upload or download made, retries included (present once it started)' })),
      ...objectFields,
      ...logs,
      ...(kind === 'backup' ? storageGcFields : {}),
      ...(kind === 'restore' ? {} : verificationFields),
    },
    { description: `the ${kind} job as the manager polls it` },
  )
}

export const JobSummarySchema = object(
  {
    id: string({ description: 'the job id' }),
    status: STATUS,
    state: string({ description: 'the running stage, or `finished`' }),
    type: string({ description: 'destination type' }),
    filename: string({ description: "the backup file or restored object; '' until known" }),
    filesize: integer({ description: 'its size in bytes' }),
    start_time: string({ description: TIMESTAMP }),
    end_time: string({ description: `${TIMESTAMP}; '' while running` }),
    execution_time_ms: integer({ description: 'milliseconds; 0 while running' }),
    error_message: optional(string({ description: 'why it failed (present only then)' })),
  },
  { description: 'one job of a listing: the polling body without the script output' },
)

export const ListingSchema = object(
  {
    jobs: array(JobSummarySchema, { description: 'newest first (by start time)' }),
    next_cursor: union([string(), nullType()], { description: 'pass as `cursor` for the next page; null on the last page' }),
  },
  { description: 'one page of jobs' },
)

export const ListingQuerySchema = object({
  status: optional(union([literal('RUNNING'), literal('SUCCEEDED'), literal('FAILED')], { description: 'only jobs with this status' })),
  limit: optional(integer({ minimum: 1, maximum: 1000, default: 100, description: 'jobs per page' })),
  cursor: optional(string({ description: 'next_cursor of the previous page' })),
})

export const IdParamsSchema = object({
  id: string({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'the job id (1-128 of A-Z a-z 0-9 . _ -, not . or ..)' }),
})

export const RefusedSchema = object(
  {
    message: string({ description: `"<kind> not started"` }),
    state: string({ description: '"Job creation"' }),
    error_message: string({ description: 'why' }),
  },
  { description: 'the job was not started' },
)

/** A trigger answered 400: polling-shaped, FAILED, state "Body Deserialization", nothing registered. */
export function rejectedSchema(kind: JobKind): JsonSchema {
  return object(
    {
      status: literal('FAILED'),
      message: string({ description: `"${kind} failed"` }),
      state: literal('Body Deserialization'),
      error_message: string({ description: 'every problem found in the body, separated by "; "' }),
    },
    { description: 'the body was rejected; no job was registered', additionalProperties: true },
  )
}

export const HealthSchema = object(
  {
    status: union([literal('ok'), literal('stopping')]),
    store: optional(literal('unwritable', { description: 'present while the job store cannot be written' })),
  },
  { description: 'liveness' },
)

/** An answer without a body. */
export const Empty = (description: string) => ({ description, type: 'null' })
