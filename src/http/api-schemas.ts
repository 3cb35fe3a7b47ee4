// Schemas of what the API answers, for the OpenAPI document (GET /openapi.json) and the docs
// page. They describe; they do not validate or serialise (src/http/app.ts turns both off, so the
// bodies stay exactly as the old agent's managers expect them).
import Type, { type TSchema } from 'typebox'
import { STAGES, logFields } from '../jobs/stages.ts'
import type { JobKind } from '../jobs/request.ts'

const STATUS = Type.Union([Type.Literal('RUNNING'), Type.Literal('SUCCEEDED'), Type.Literal('FAILED')], {
  description: 'RUNNING until the job ends, then SUCCEEDED or FAILED',
})
const TIMESTAMP = 'UTC, `YYYY-MM-DDTHH:MM:SS+00:00`'

export const MessageSchema = Type.Object({ message: Type.String({ description: 'what happened, for a person' }) }, { description: 'a message' })

const stageNames = (kind: JobKind) => STAGES[kind].map((s) => `\`${s.name}\``).join(', ')

/** The polling body of GET /<kind>/{id}: every field the agent may put in it. */
export function pollingBodySchema(kind: JobKind): TSchema {
  const logs: Record<string, TSchema> = {}
  for (const field of logFields(kind)) {
    const stage = field.replace(/_(log|errorlog)$/, '').replaceAll('_', '-')
    const stream = field.endsWith('_errorlog') ? 'stderr' : 'stdout'
    logs[field] = Type.String({ description: `the last script_log_max_bytes of the ${stage} script's ${stream}, secrets masked; '' until it ran` })
  }
  return Type.Object(
    {
      status: STATUS,
      message: Type.String({ description: `"${kind} is running", "${kind} successfully carried out" or "${kind} failed"` }),
      state: Type.String({ description: `the running stage (${stageNames(kind)}), \`starting\` before the first, \`finished\` at the end` }),
      error_message: Type.Optional(Type.String({ description: 'why the job failed (present only then); cleanup and unlock problems are appended' })),
      type: Type.String({ description: 'destination type as requested: S3, SWIFT or LOCAL' }),
      compression: Type.Boolean({ description: 'the request\'s compression flag, passed to the scripts' }),
      skip_storage: Type.Boolean({ description: 'true when the scripts move the file themselves (no upload or download stage)' }),
      useSSL: Type.Optional(Type.Boolean({ description: 'S3 and SWIFT: whether the storage endpoint is reached over HTTPS' })),
      skipSSL: Type.Optional(Type.Boolean({ description: 'S3 and SWIFT: the opposite of useSSL' })),
      endpoint: Type.Optional(Type.String({ description: 'S3: the endpoint as requested (or default_s3_endpoint)' })),
      bucket: Type.Optional(Type.String({ description: 'S3: the bucket' })),
      region: Type.Optional(Type.String({ description: 'S3: the region, when the request gave one' })),
      authUrl: Type.Optional(Type.String({ description: 'SWIFT: the Keystone or Swift auth URL' })),
      domain: Type.Optional(Type.String({ description: 'SWIFT: the Keystone domain' })),
      container_name: Type.Optional(Type.String({ description: 'SWIFT: the container' })),
      project_name: Type.Optional(Type.String({ description: 'SWIFT: the Keystone project' })),
      filenamePrefix: Type.String({ description: 'exactly as received; S3 key prefix, LOCAL folder' }),
      filename: Type.String({ description: kind === 'backup' ? 'the file the backup script wrote (the object name without the prefix); \'\' until then' : 'the object restored' }),
      filesize: Type.Object(
        { size: Type.Integer({ description: 'bytes' }), unit: Type.Literal('byte', { description: 'always "byte"' }) },
        { description: kind === 'backup' ? 'size of the backup file' : 'size of the downloaded file' },
      ),
      start_time: Type.String({ description: `when the job started, ${TIMESTAMP}` }),
      end_time: Type.String({ description: `when it ended, ${TIMESTAMP}; '' while running` }),
      execution_time_ms: Type.Integer({ description: 'end_time − start_time in milliseconds; 0 while running' }),
      attempts: Type.Optional(Type.Integer({ description: 'requests the upload or download made, retries included (present once it started)' })),
      ...logs,
    },
    { description: `the ${kind} job as the manager polls it` },
  )
}

export const JobSummarySchema = Type.Object(
  {
    id: Type.String({ description: 'the job id' }),
    status: STATUS,
    state: Type.String({ description: 'the running stage, or `finished`' }),
    type: Type.String({ description: 'destination type' }),
    filename: Type.String({ description: 'the backup file or restored object; \'\' until known' }),
    filesize: Type.Integer({ description: 'its size in bytes' }),
    start_time: Type.String({ description: TIMESTAMP }),
    end_time: Type.String({ description: `${TIMESTAMP}; '' while running` }),
    execution_time_ms: Type.Integer({ description: 'milliseconds; 0 while running' }),
    error_message: Type.Optional(Type.String({ description: 'why it failed (present only then)' })),
  },
  { description: 'one job of a listing: the polling body without the script output' },
)

export const ListingSchema = Type.Object(
  {
    jobs: Type.Array(JobSummarySchema, { description: 'newest first (by start time)' }),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' }),
  },
  { description: 'one page of jobs' },
)

export const ListingQuerySchema = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('RUNNING'), Type.Literal('SUCCEEDED'), Type.Literal('FAILED')], { description: 'only jobs with this status' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'jobs per page' })),
  cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page' })),
})

export const IdParamsSchema = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'the job id (1-128 of A-Z a-z 0-9 . _ -, not . or ..)' }),
})

export const RefusedSchema = Type.Object(
  {
    message: Type.String({ description: `"<kind> not started"` }),
    state: Type.String({ description: '"Job creation"' }),
    error_message: Type.String({ description: 'why' }),
  },
  { description: 'the job was not started' },
)

/** A trigger answered 400: polling-shaped, FAILED, state "Body Deserialization", nothing registered. */
export function rejectedSchema(kind: JobKind): TSchema {
  return Type.Object(
    {
      status: Type.Literal('FAILED'),
      message: Type.String({ description: `"${kind} failed"` }),
      state: Type.Literal('Body Deserialization'),
      error_message: Type.String({ description: 'every problem found in the body, separated by "; "' }),
    },
    { description: 'the body was rejected; no job was registered', additionalProperties: true },
  )
}

export const HealthSchema = Type.Object(
  { status: Type.Union([Type.Literal('ok'), Type.Literal('stopping')]), store: Type.Optional(Type.Literal('unwritable', { description: 'present while the job store cannot be written' })) },
  { description: 'liveness' },
)

/** An answer without a body. */
export const Empty = (description: string) => ({ description, type: 'null' })
