import type { FastifyInstance } from 'fastify'

export function registerStatusRoutes(app: FastifyInstance): void {
  app.get('/status', async () => ({ message: 'Client is running' }))
}
