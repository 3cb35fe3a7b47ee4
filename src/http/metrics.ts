// GET /metrics: Prometheus text format; behind the agent's credentials unless metrics_public
// (the route's access in src/http/routes.ts).
import type { Answer, Exchange } from './exchange.ts'

export async function metrics(x: Exchange): Promise<Answer> {
  const { contentType, text } = await x.deps.metrics.render()
  return { status: 200, bytes: text, type: contentType }
}
