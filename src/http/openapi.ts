// The OpenAPI 3.1 document, built from a route table (src/http/routes.ts): every route with its
// parameters, body and answers. Loaded on the first /openapi.json or /docs request only
// (src/http/docs.ts). Built here, not by a generator: @fastify/swagger needs Fastify, and a
// second instance of it to describe the routes.
import { readFileSync } from 'node:fs'
import { INSTALL_ROOT } from '../install-root.ts'
import type { JsonSchema } from './json-schema.ts'
import type { ResponseDoc, Route } from './route.ts'

const VERSION = (JSON.parse(readFileSync(new URL('package.json', INSTALL_ROOT), 'utf8')) as { version: string }).version

export interface OpenApiDocument {
  openapi: string
  info: { title: string; version: string; description?: string }
  paths: Record<string, Record<string, Operation>>
  [key: string]: unknown
}

export interface Parameter {
  name: string
  in: 'path' | 'query'
  required: boolean
  description?: string
  schema: JsonSchema
}

export interface Operation {
  summary?: string
  description?: string
  tags?: string[]
  security?: unknown[]
  parameters?: Parameter[]
  requestBody?: { required?: boolean; description?: string; content?: Record<string, { schema?: JsonSchema }> }
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: JsonSchema }> }>
}

/** The document for these routes (the server's: the whole table of src/http/routes.ts). */
export function openApiDocument(routes: readonly Route[]): OpenApiDocument {
  const paths: Record<string, Record<string, Operation>> = {}
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}')
    ;(paths[path] ??= {})[route.method.toLowerCase()] = operation(route)
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'osb-backup-agent API',
      version: VERSION,
      description:
        'The backup agent on a service-broker database VM. A backup manager starts backups and restores, then polls them; the agent runs the lifecycle scripts and moves the file to S3, Swift or a local folder. Request bodies are read as JSON whatever the Content-Type; keys are matched case-insensitively.',
    },
    components: { securitySchemes: { basicAuth: { type: 'http', scheme: 'basic', description: 'client_username / client_password' } } },
    security: [{ basicAuth: [] }],
    tags: [
      { name: 'backup', description: 'backups: start, poll, list, cancel, forget' },
      { name: 'restore', description: 'restores: start, poll, list, cancel, forget' },
      { name: 'verify', description: 'verify a stored backup without restoring it: start, poll, list, cancel, forget' },
      { name: 'agent', description: 'the agent itself' },
    ],
    paths,
  }
}

function operation(route: Route): Operation {
  const { doc } = route
  const op: Operation = { summary: doc.summary, tags: doc.tags }
  if (doc.description) op.description = doc.description
  // The document's default is Basic auth; a public route needs none.
  if (route.access === 'public') op.security = []
  const parameters = [...parametersOf(doc.params, 'path'), ...parametersOf(doc.query, 'query')]
  if (parameters.length > 0) op.parameters = parameters
  if (doc.body) {
    op.requestBody = { required: true, content: { 'application/json': { schema: doc.body } } }
    if (doc.body.description !== undefined) op.requestBody.description = doc.body.description
  }
  op.responses = {}
  for (const [status, answer] of Object.entries(doc.responses)) op.responses[status] = response(answer)
  return op
}

/** One parameter per property of an object schema; its description moves to the parameter. */
function parametersOf(schema: JsonSchema | undefined, where: 'path' | 'query'): Parameter[] {
  return Object.entries(schema?.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property
    const parameter: Parameter = { name, in: where, required: where === 'path' || (schema?.required ?? []).includes(name), schema: rest }
    if (description !== undefined) parameter.description = description
    return parameter
  })
}

/** A JSON schema is an application/json answer; `Empty()` (type null) has no body. */
function response(answer: ResponseDoc): { description: string; content?: Record<string, { schema: JsonSchema }> } {
  const description = answer.description ?? ''
  if (answer.content) return { description, content: answer.content }
  if (answer.type === 'null') return { description }
  return { description, content: { 'application/json': { schema: answer } } }
}
