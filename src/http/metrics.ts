// GET /metrics: Prometheus text format; behind the agent's credentials unless metrics_public.
import type { FastifyInstance } from 'fastify'
import type { AgentMetrics } from '../metrics.ts'

export function registerMetricsRoutes(app: FastifyInstance, metrics: AgentMetrics): void {
  app.get('/metrics', { config: { metrics: true } }, async (_req, reply) => {
    const { contentType, text } = await metrics.render()
    return reply.header('content-type', contentType).send(text)
  })
}
