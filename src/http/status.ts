// GET /status (the old agent's liveness check, authenticated) and GET /healthz (for load
// balancers and service managers: unauthenticated, and it tells nothing but up or stopping).
import type { FastifyInstance } from 'fastify'
import type { JobRegistry } from '../jobs/registry.ts'
import { HealthSchema, MessageSchema } from './api-schemas.ts'

export function registerStatusRoutes(app: FastifyInstance, registry: JobRegistry): void {
  const statusSchema = { tags: ['agent'], summary: 'is the agent running (authenticated)', response: { 200: { ...MessageSchema, description: '{"message":"Client is running"}' } } }
  app.get('/status', { schema: statusSchema }, async () => ({ message: 'Client is running' }))

  const healthSchema = {
    tags: ['agent'],
    summary: 'liveness, without credentials',
    description: '200 while the agent serves, 503 while it shuts down; says nothing else.',
    security: [],
    response: { 200: { ...HealthSchema, description: 'serving' }, 503: { ...HealthSchema, description: 'shutting down' } },
  }
  app.get('/healthz', { config: { public: true }, schema: healthSchema }, async (_req, reply) => {
    if (registry.closing) return reply.code(503).send({ status: 'stopping' })
    return { status: 'ok' }
  })
}
