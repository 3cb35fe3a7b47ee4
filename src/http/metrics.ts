// GET /metrics: Prometheus text format; behind the agent's credentials unless metrics_public.
import type { FastifyInstance } from 'fastify'
import type { AgentMetrics } from '../metrics.ts'

export function registerMetricsRoutes(app: FastifyInstance, metrics: AgentMetrics): void {
  const schema = {
    tags: ['agent'],
    summary: 'Prometheus metrics',
    description: 'Jobs started and finished, running jobs, stage durations, transfer bytes and time by backend, failures by reason, process metrics. Needs the credentials unless metrics_public is true.',
    produces: ['text/plain'],
    response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
  }
  app.get('/metrics', { config: { metrics: true }, schema }, async (_req, reply) => {
    const text = await metrics.registry.metrics()
    return reply.header('content-type', metrics.registry.contentType).send(text)
  })
}
