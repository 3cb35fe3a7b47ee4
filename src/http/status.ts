// GET /status (the old agent's liveness check, authenticated) and GET /healthz (for load
// balancers and service managers: unauthenticated, and it tells nothing but up or stopping).
import type { FastifyInstance } from 'fastify'
import type { JobRegistry } from '../jobs/registry.ts'

export function registerStatusRoutes(app: FastifyInstance, registry: JobRegistry): void {
  app.get('/status', async () => ({ message: 'Client is running' }))
  app.get('/healthz', { config: { public: true } }, async (_req, reply) => {
    if (registry.closing) return reply.code(503).send({ status: 'stopping' })
    return { status: 'ok' }
  })
}
