// TypeBox schemas of the trigger bodies (SPEC §3). They fix each documented key's canonical
// spelling and type; src/http/trigger.ts matches keys case-insensitively against them and adds
// the rules a schema cannot say (which fields a destination type needs, reserved names, …).
import Type, { type Static, type TSchema } from 'typebox'

const Nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]))
const Text = Nullable(Type.String())
const Flag = Nullable(Type.Boolean())

export const DestinationSchema = Type.Object({
  type: Text,
  skipStorage: Flag,
  filenamePrefix: Text,
  filename: Text,
  // S3
  bucket: Text,
  endpoint: Text,
  region: Text,
  authKey: Text,
  authSecret: Text,
  useSSL: Flag,
  skipSSL: Flag,
  // Swift
  authUrl: Text,
  domain: Text,
  project_name: Text,
  container_name: Text,
  username: Text,
  password: Text,
})

export const DatabaseSchema = Type.Object({
  host: Text,
  username: Text,
  password: Text,
  database: Text,
  /** A list of one-key objects, a plain object, or null; its keys are taken as they are. */
  parameters: Type.Optional(Type.Unknown()),
})

export const TriggerSchema = Type.Object({
  id: Text,
  compression: Flag,
  encryption_key: Text,
  destination: Nullable(DestinationSchema),
  backup: Nullable(DatabaseSchema),
  restore: Nullable(DatabaseSchema),
})
export type TriggerBody = Static<typeof TriggerSchema>

export const DeleteSchema = Type.Object({ id: Text })
export type DeleteBody = Static<typeof DeleteSchema>
