// JSON schemas of the trigger bodies (SPEC §3), as plain data. They fix each documented key's
// canonical spelling and type; src/http/trigger.ts matches keys case-insensitively against them
// (src/http/schema-check.ts checks the types) and adds the rules a schema cannot say (which
// fields a destination type needs, reserved names, …). Their descriptions are the request part
// of the OpenAPI document.
import { boolean, nullType, object, optional, string, union, unknown, type JsonSchema } from './json-schema.ts'

const Nullable = (schema: JsonSchema, description: string) => optional(union([schema, nullType()], { description }))
const Text = (description: string) => Nullable(string(), description)
const Flag = (description: string) => Nullable(boolean(), description)

export const DestinationSchema = object(
  {
    type: Text("S3, SWIFT or LOCAL (objects under the agent's local_storage_root)"),
    skipStorage: Flag('the scripts move the file themselves; they get the destination as S3_* / SWIFT_* variables'),
    filenamePrefix: Text(
      'S3 key prefix or LOCAL folder, ending in /; echoed in the polling body; at most 512 bytes where the agent stores under it, LOCAL folders 255',
    ),
    filename: Text('restore: the object to fetch, without the prefix (a plain file name, at most 200 bytes in UTF-8)'),
    // S3
    bucket: Text('S3: bucket'),
    endpoint: Text('S3: host[:port], optionally with http:// or https:// (default: default_s3_endpoint)'),
    region: Text('S3: region (default: discovered)'),
    authKey: Text('S3: access key'),
    authSecret: Text('S3: secret key (never logged or echoed)'),
    useSSL: Flag('S3: HTTPS (default true unless the endpoint says http://)'),
    skipSSL: Flag('S3: the opposite of useSSL (older managers)'),
    // Swift
    authUrl: Text('SWIFT: Keystone (…/v3, …/v2.0) or Swift v1 auth URL, without user:password@'),
    domain: Text('SWIFT: Keystone domain'),
    project_name: Text('SWIFT: Keystone project'),
    container_name: Text('SWIFT: container'),
    username: Text('SWIFT: user'),
    password: Text('SWIFT: password (never logged or echoed)'),
  },
  { description: 'where the backup goes or the restore comes from' },
)

export const DatabaseSchema = object(
  {
    host: Text('database host (script argument)'),
    username: Text('database user (script argument)'),
    password: Text('database password (script argument; never logged or echoed; may be "")'),
    database: Text('database name (script argument)'),
    /** A list of one-key objects, a plain object, or null; its keys are taken as they are. */
    parameters: optional(
      unknown({
        description:
          'extra variables for the scripts: [{"name": value}, …] or {"name": value}; names [a-z_][a-z0-9_]* or listed in script_parameter_names, reserved names refused; at most 256, values at most 32 KiB',
      }),
    ),
  },
  { description: 'the database the scripts work on' },
)

export const TriggerSchema = object(
  {
    id: Text('job id: 1-128 of A-Z a-z 0-9 . _ -, not . or ..; a known id answers 409'),
    compression: Flag('passed to the scripts'),
    encryption_key: Text('passed to the scripts; never logged or echoed'),
    destination: Nullable(DestinationSchema, 'where the file goes or comes from'),
    backup: Nullable(DatabaseSchema, 'POST /backup: the database to back up'),
    restore: Nullable(DatabaseSchema, 'PUT /restore: the database to restore into'),
  },
  { description: 'keys are matched case-insensitively; unknown keys are ignored' },
)

export const VerifySchema = object(
  {
    id: Text('job id: 1-128 of A-Z a-z 0-9 . _ -, not . or ..; a known id answers 409'),
    encryption_key: Text(
      'a streamed (.osb) encrypted object: the passphrase or PEM private key, to authenticate every frame; without it only the format and SHA-256 are checked; never logged or echoed',
    ),
    destination: Nullable(DestinationSchema, 'where the object is: destination.filename names it (skipStorage is refused)'),
  },
  { description: 'keys are matched case-insensitively; unknown keys are ignored' },
)

export const DeleteSchema = object({ id: Text('the job to forget') })

// The bodies as the schemas let them through (src/http/schema-check.ts): any key may be missing
// or null.
type Field<T> = T | null | undefined
export interface DestinationBody {
  type?: Field<string>
  skipStorage?: Field<boolean>
  filenamePrefix?: Field<string>
  filename?: Field<string>
  bucket?: Field<string>
  endpoint?: Field<string>
  region?: Field<string>
  authKey?: Field<string>
  authSecret?: Field<string>
  useSSL?: Field<boolean>
  skipSSL?: Field<boolean>
  authUrl?: Field<string>
  domain?: Field<string>
  project_name?: Field<string>
  container_name?: Field<string>
  username?: Field<string>
  password?: Field<string>
}
export interface DatabaseBody {
  host?: Field<string>
  username?: Field<string>
  password?: Field<string>
  database?: Field<string>
  parameters?: unknown
}
export interface TriggerBody {
  id?: Field<string>
  compression?: Field<boolean>
  encryption_key?: Field<string>
  destination?: Field<DestinationBody>
  backup?: Field<DatabaseBody>
  restore?: Field<DatabaseBody>
}
export interface DeleteBody {
  id?: Field<string>
}
