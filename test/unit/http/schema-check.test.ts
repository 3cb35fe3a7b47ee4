import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { loadConfig } from '../../../src/config.ts'
import { array, boolean, integer, nullType, object, optional, string, union } from '../../../src/http/json-schema.ts'
import { schemaErrors } from '../../../src/http/schema-check.ts'
import { DestinationSchema, TriggerSchema } from '../../../src/http/schemas.ts'
import { parseDelete, parseTrigger } from '../../../src/http/trigger.ts'

const { config } = loadConfig({ client_username: 'u', client_password: 'p', directory_backup: '/b', directory_restore: '/r' })
const good = () => ({
  id: 'job-1',
  destination: { type: 'S3', bucket: 'b', authKey: 'k', authSecret: 's' },
  backup: { host: 'h', username: 'u', password: 'p', database: 'd' },
})
const errorsOf = (body: unknown, kind: 'backup' | 'restore' = 'backup') => {
  const parsed = parseTrigger(kind, body, config)
  return parsed.ok ? [] : parsed.errors
}

describe('schemaErrors', () => {
  it('reports a failure as TypeBox did: each member of a union, then the union', () => {
    assert.deepEqual(schemaErrors({ id: 5 }, TriggerSchema), [
      { keyword: 'type', instancePath: '/id', params: { type: 'string' } },
      { keyword: 'type', instancePath: '/id', params: { type: 'null' } },
      { keyword: 'anyOf', instancePath: '/id', params: {} },
    ])
    // a bad field inside an object also fails the object's `| null`
    assert.deepEqual(
      schemaErrors({ destination: { bucket: true } }, TriggerSchema).map((e) => `${e.keyword} ${e.instancePath} ${e.params.type ?? ''}`),
      [
        'type /destination/bucket string',
        'type /destination/bucket null',
        'anyOf /destination/bucket ',
        'type /destination null',
        'anyOf /destination ',
      ],
    )
  })

  it('checks properties in the order of the schema, not of the body', () => {
    const paths = schemaErrors({ useSSL: 'x', type: 1, bucket: [] }, DestinationSchema)
      .filter((e) => e.keyword === 'anyOf')
      .map((e) => e.instancePath)
    assert.deepEqual(paths, ['/type', '/bucket', '/useSSL'])
  })

  it('accepts what fits, null where allowed, and treats undefined as a missing key', () => {
    assert.deepEqual(schemaErrors(good(), TriggerSchema), [])
    assert.deepEqual(schemaErrors({ id: null, destination: null, compression: undefined, unknownKey: 5 }, TriggerSchema), [])
    assert.deepEqual(schemaErrors({ backup: { parameters: [{ a: 1 }, 'anything'] } }, TriggerSchema), [], 'parameters is any JSON')
  })

  it('tells objects from arrays and null, integers from other numbers; required properties', () => {
    const schema = object({ n: integer(), list: array(string()), flag: optional(union([boolean(), nullType()])) })
    const failed = (value: unknown) =>
      schemaErrors(value, schema).map(
        (e) => `${e.keyword} ${e.instancePath} ${e.params.type ?? e.params.requiredProperties?.join(',') ?? ''}`,
      )
    assert.deepEqual(failed([]), ['type  object'])
    assert.deepEqual(failed(null), ['type  object'])
    assert.deepEqual(failed({ n: 1.5, list: {} }), ['type /n integer', 'type /list array'])
    assert.deepEqual(failed({ n: 1 }), ['required  list'])
    assert.deepEqual(failed({ n: 1, list: [] }), [])
  })
})

describe('trigger body messages', () => {
  it('names each field of the wrong type once, with the types it may have', () => {
    assert.deepEqual(errorsOf({ ...good(), compression: 'yes' }), ['compression must be boolean or null'])
    assert.deepEqual(errorsOf({ ...good(), destination: 5 }), ['destination must be object or null'])
    assert.deepEqual(errorsOf({ ...good(), destination: [] }), ['destination must be object or null'])
    assert.deepEqual(errorsOf({ ...good(), destination: { ...good().destination, bucket: 5 } }), [
      'destination.bucket must be string or null',
    ])
    assert.deepEqual(errorsOf({ ...good(), id: 5 }), ['id must be string or null'])
    const parsed = parseDelete({ id: ['x'] })
    assert.deepEqual(parsed.ok ? [] : parsed.errors, ['id must be string or null'])
  })

  it("reports every bad field, more than TypeBox's 8 failures, and a bad field never reaches the later checks", () => {
    // 5 bad fields: 20 failures. TypeBox stopped at 8, and backup.host (a number) then reached
    // the byte counting of the script inputs, a 500.
    const body = {
      id: 'q1',
      compression: 'yes',
      destination: { type: 'S3', bucket: 5, useSSL: 'x', skipSSL: 3 },
      backup: { host: 5, password: null, parameters: 7 },
    }
    assert.deepEqual(errorsOf(body), [
      'compression must be boolean or null',
      'destination.bucket must be string or null',
      'destination.useSSL must be boolean or null',
      'destination.skipSSL must be boolean or null',
      'backup.host must be string or null',
    ])
  })

  it('matches keys case-insensitively before checking them', () => {
    assert.deepEqual(errorsOf({ ...good(), COMPRESSION: 'yes' }), ['compression must be boolean or null'])
    const { destination: _, ...rest } = good()
    assert.deepEqual(errorsOf({ ...rest, Destination: { TYPE: 'S3', BUCKET: false, authkey: 'k', AuthSecret: 's' } }), [
      'destination.bucket must be string or null',
    ])
  })

  it('agrees with an independent type oracle on generated bodies, and never throws', () => {
    const strings = ['id', 'encryption_key']
    const destinationText = [
      'type',
      'filenamePrefix',
      'filename',
      'bucket',
      'endpoint',
      'region',
      'authKey',
      'authSecret',
      'authUrl',
      'domain',
      'project_name',
      'container_name',
      'username',
      'password',
    ]
    const destinationFlags = ['skipStorage', 'useSSL', 'skipSSL']
    const databaseText = ['host', 'username', 'password', 'database']
    const value = fc.oneof(
      fc.string({ maxLength: 4 }),
      fc.boolean(),
      fc.constant(null),
      fc.integer(),
      fc.constant([]),
      fc.constant({}),
      fc.double(),
    )
    const fields = (names: string[]) => fc.dictionary(fc.constantFrom(...names), value, { maxKeys: 6 })
    const body = fc.record(
      {
        id: value,
        compression: value,
        encryption_key: value,
        destination: fc.oneof(value, fields([...destinationText, ...destinationFlags])),
        backup: fc.oneof(value, fields([...databaseText, 'parameters'])),
      },
      { requiredKeys: [] },
    )
    // the type each field may have, besides null
    const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)
    fc.assert(
      fc.property(body, (b) => {
        const expected = new Set<string>()
        const field = (name: string, v: unknown, type: string) => {
          if (v !== undefined && v !== null && typeOf(v) !== type) expected.add(`${name} must be ${type} or null`)
        }
        for (const name of strings) field(name, (b as Record<string, unknown>)[name], 'string')
        field('compression', b.compression, 'boolean')
        for (const [name, schemaType] of [
          ['destination', 'object'],
          ['backup', 'object'],
        ] as const) {
          const v = (b as Record<string, unknown>)[name]
          field(name, v, schemaType)
          if (typeOf(v) !== 'object') continue
          const inner = v as Record<string, unknown>
          for (const [key, child] of Object.entries(inner)) {
            if (key === 'parameters') continue
            field(`${name}.${key}`, child, destinationFlags.includes(key) && name === 'destination' ? 'boolean' : 'string')
          }
        }
        const reported = new Set(errorsOf(b).filter((m) => / must be (string|boolean|object) or null$/.test(m)))
        assert.deepEqual([...reported].sort(), [...expected].sort())
      }),
      { numRuns: 2000 },
    )
  })
})
