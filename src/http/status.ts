// GET /status (the old agent's liveness check, authenticated) and GET /healthz (for load
// balancers and service managers: unauthenticated, and it tells nothing but up or stopping, and
// `"store":"unwritable"` while the job store cannot be written: still 200, since a restart
// would not free a full disk and a service manager must not loop on it).
import type { FastifyInstance } from 'fastify'
import type { JobRegistry } from '../jobs/registry.ts'

export function registerStatusRoutes(app: FastifyInstance, registry: JobRegistry): void {
  app.get('/status', async () => ({ message: 'Client is running' }))
  app.get('/healthz', { config: { public: true } }, async (_req, reply) => {
    if (registry.closing) return reply.code(503).send({ status: 'stopping' })
    return registry.storeProblem === undefined ? { status: 'ok' } : { status: 'ok', store: 'unwritable' }
  })
}
