// GET /status (the old agent's liveness check, authenticated) and GET /healthz (for load
// balancers and service managers: unauthenticated, and it tells nothing but up or stopping, and
// `"store":"unwritable"` while the job store cannot be written: still 200, since a restart
// would not free a full disk and a service manager must not loop on it).
import { jsonAnswer, type Answer, type Exchange } from './exchange.ts'

const RUNNING = jsonAnswer(200, { message: 'Client is running' })

export const status = (): Answer => RUNNING

export function health(x: Exchange): Answer {
  const { registry } = x.deps
  if (registry.closing) return jsonAnswer(503, { status: 'stopping' })
  return jsonAnswer(200, registry.storeProblem === undefined ? { status: 'ok' } : { status: 'ok', store: 'unwritable' })
}
