// The shape of one route of the API's table (src/http/routes.ts), apart from the table itself so
// that what reads routes (the router, the server, the OpenAPI document) needs no route's handler.
import type { JsonSchema } from './json-schema.ts'
import type { Handler } from './jobs.ts'

/**
 * `public`: no credentials; `authenticated`: client_username / client_password; `metrics`:
 * authenticated unless metrics_public.
 */
export type Access = 'public' | 'authenticated' | 'metrics'

/** An answer in the document: a JSON schema, `Empty()` for none, or other content types. */
export type ResponseDoc = JsonSchema & { content?: Record<string, { schema: JsonSchema }> }

export interface RouteDoc {
  tags: string[]
  summary: string
  description?: string
  /** An object schema: one property per path parameter. */
  params?: JsonSchema
  /** An object schema: one property per query parameter. */
  query?: JsonSchema
  body?: JsonSchema
  responses: Record<number, ResponseDoc>
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** Segments; `:name` is a parameter (one whole segment). */
  path: string
  access: Access
  doc: RouteDoc
  handle: Handler
}
