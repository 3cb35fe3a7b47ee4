// The agent's logger: one JSON line per event on stdout, in pino's shape ({"level":30,"time":…,
// "service":…, fields…, "msg":…}, pino's level numbers), so log pipelines written for it keep
// working. Not pino itself: it and the modules it loads (sonic-boom, thread-stream, worker
// threads) kept ~8 MB resident and cost ~20 ms of start-up, an eighth of the idle agent's memory,
// for the few lines a job writes (docs/PERFORMANCE.md).
//
// Nothing logs a raw request body; redaction is the second line of defence: a field named like a
// secret is written as "[redacted]", at any depth.

export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const
export type LevelName = keyof typeof LEVELS
export type LogLevel = LevelName | 'silent'

type LogFn = (fieldsOrMessage: Record<string, unknown> | string, message?: string) => void

export interface Logger extends Record<LevelName, LogFn> {
  readonly level: LogLevel
  isLevelEnabled(level: LevelName): boolean
  /** A logger whose lines also carry these fields. */
  child(fields: Record<string, unknown>): Logger
}

/** Where lines go: stdout, or a test's collector. */
export interface LogDestination {
  write(line: string): unknown
}

/** Field names whose values never reach a log line (request fields, their script variables, headers). */
export const REDACTED_FIELDS: ReadonlySet<string> = new Set([
  'authorization',
  'password',
  'authSecret',
  'encryption_key',
  'encryptionKey',
  'clientPassword',
  'DB_PASSWORD',
  'ENCRYPTION_KEY',
  'S3_AUTHSECRET',
  'SWIFT_PASSWORD',
])

const CENSOR = '[redacted]'

/**
 * stdout, where a write error (a closed pipe, a restarted journal) loses the line instead of
 * ending the agent with an unhandled 'error' event.
 */
function stdout(): LogDestination {
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => {})
  return process.stdout
}

function replacer(key: string, value: unknown): unknown {
  if (REDACTED_FIELDS.has(key)) return CENSOR
  // an Error's own fields are not enumerable: write what pino's err serializer writes
  if (value instanceof Error) return { type: value.name, message: value.message, stack: value.stack, ...(value.cause === undefined ? {} : { cause: value.cause }) }
  return value
}

export function createLogger(level: LogLevel, destination: LogDestination = stdout()): Logger {
  const threshold = level === 'silent' ? Infinity : LEVELS[level]
  // The head every line starts with, after level and time: the base fields and the child's.
  const make = (head: string): Logger => {
    const write = (name: LevelName): LogFn => {
      const number = LEVELS[name]
      return (fieldsOrMessage, message) => {
        if (number < threshold) return
        const fields = typeof fieldsOrMessage === 'string' ? undefined : fieldsOrMessage
        const msg = typeof fieldsOrMessage === 'string' ? fieldsOrMessage : message
        let body = fields ? JSON.stringify(fields, replacer).slice(1, -1) : ''
        if (msg !== undefined) body += `${body === '' ? '' : ','}"msg":${JSON.stringify(msg)}`
        destination.write(`{"level":${number},"time":"${new Date().toISOString()}",${head}${body === '' ? '' : `,${body}`}}\n`)
      }
    }
    return {
      level,
      trace: write('trace'),
      debug: write('debug'),
      info: write('info'),
      warn: write('warn'),
      error: write('error'),
      fatal: write('fatal'),
      isLevelEnabled: (name) => LEVELS[name] >= threshold,
      child: (fields) => {
        const more = JSON.stringify(fields, replacer).slice(1, -1)
        return make(more === '' ? head : `${head},${more}`)
      },
    }
  }
  return make('"service":"osb-backup-agent"')
}
