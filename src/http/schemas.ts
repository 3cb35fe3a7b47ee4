// TypeBox schemas of the trigger bodies (SPEC §3). They fix each documented key's canonical
// spelling and type; src/http/trigger.ts matches keys case-insensitively against them and adds
// the rules a schema cannot say (which fields a destination type needs, reserved names, …).
// Their descriptions are the request part of the OpenAPI document.
import Type, { type Static, type TSchema } from 'typebox'

const Nullable = <T extends TSchema>(schema: T, description: string) => Type.Optional(Type.Union([schema, Type.Null()], { description }))
const Text = (description: string) => Nullable(Type.String(), description)
const Flag = (description: string) => Nullable(Type.Boolean(), description)

export const DestinationSchema = Type.Object(
  {
    type: Text('S3, SWIFT or LOCAL (objects under the agent\'s local_storage_root)'),
    skipStorage: Flag('the scripts move the file themselves; they get the destination as S3_* / SWIFT_* variables'),
    filenamePrefix: Text('S3 key prefix or LOCAL folder, ending in /; echoed in the polling body; at most 512 bytes where the agent stores under it, LOCAL folders 255'),
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

export const DatabaseSchema = Type.Object(
  {
    host: Text('database host (script argument)'),
    username: Text('database user (script argument)'),
    password: Text('database password (script argument; never logged or echoed; may be "")'),
    database: Text('database name (script argument)'),
    /** A list of one-key objects, a plain object, or null; its keys are taken as they are. */
    parameters: Type.Optional(Type.Unknown({ description: 'extra variables for the scripts: [{"name": value}, …] or {"name": value}; names [a-z_][a-z0-9_]* or listed in script_parameter_names, reserved names refused; at most 256, values at most 32 KiB' })),
  },
  { description: 'the database the scripts work on' },
)

export const TriggerSchema = Type.Object(
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
export type TriggerBody = Static<typeof TriggerSchema>

export const DeleteSchema = Type.Object({ id: Text('the job to forget') })
export type DeleteBody = Static<typeof DeleteSchema>
