// The agent's logger: one JSON line per event on stdout, in pino's shape ({"level":30,"time":…,
// "service":…, fields…, "msg":…}, pino's level numbers), so log pipelines written for it keep
// working; on a terminal, a line for a person instead, as pino-pretty would show it (log_format
// forces either). Not pino itself: it and the modules it loads (sonic-boom, thread-stream, worker
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
  /** True for a terminal (process.stdout has it): lines for a person, in colour. */
  readonly isTTY?: boolean
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
 * stdout and stderr, where a write error (a closed pipe, a restarted journal) loses the line
 * instead of raising an 'error' event nothing handles. On stderr that was an uncaught exception,
 * whose report on stderr raised the next one: a loop that kept the agent at 100 % CPU and deaf to
 * SIGTERM, its polls unanswered.
 */
export function loseLinesOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => {})
}

function stdout(): LogDestination {
  loseLinesOnClosedOutput()
  return process.stdout
}

function replacer(key: string, value: unknown): unknown {
  if (REDACTED_FIELDS.has(key)) return CENSOR
  // an Error's own fields are not enumerable: write what pino's err serializer writes
  if (value instanceof Error)
    return { type: value.name, message: value.message, stack: value.stack, ...(value.cause === undefined ? {} : { cause: value.cause }) }
  return value
}

/** How lines look: pino's JSON lines, or pino-pretty's kind of line for a person at a terminal. */
export type LogFormat = 'json' | 'pretty'
/** `auto`: pretty where the destination is a terminal, JSON everywhere else (services, tests). */
export type LogFormatSetting = LogFormat | 'auto'

/**
 * One line. `members` are the line's fields as JSON object members, redacted already: the child's
 * fields, then the call's (the service field is not among them).
 */
type Render = (level: LevelName, time: Date, members: string, msg: string | undefined) => string

const SERVICE = '"service":"osb-backup-agent"'

const jsonLine: Render = (level, time, members, msg) => {
  const body = msg === undefined ? members : `${members}${members === '' ? '' : ','}"msg":${JSON.stringify(msg)}`
  return `{"level":${LEVELS[level]},"time":"${time.toISOString()}",${SERVICE}${body === '' ? '' : `,${body}`}}\n`
}

const COLOURS: Record<LevelName, string> = { trace: '90', debug: '34', info: '32', warn: '33', error: '31', fatal: '41;97' }
const paint = (code: string, text: string) => `\x1b[${code}m${text}\x1b[0m`

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }
/** Control characters written as escapes: a logged value must not move the cursor or fake a line. */
const visible = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

/** A value as JSON, but a string that reads unambiguously without quotes goes without them. */
const prettyValue = (value: unknown): string =>
  typeof value === 'string' && /^[^\s"=\\\u0000-\u001f\u007f-\u009f]+$/.test(value) ? value : visible(JSON.stringify(value))

/** An error as the replacer wrote it: shown as `Type: message`, its stack's frames on lines below. */
const isWrittenError = (value: unknown): value is { type: string; message: string; stack: string } =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as { stack?: unknown }).stack === 'string' &&
  typeof (value as { type?: unknown }).type === 'string'

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/** `[12:34:56.789] INFO: message  key=value …` in local time; colours only for a terminal. */
function prettyLine(colour: boolean): Render {
  const dim = (text: string) => (colour ? paint('2', text) : text)
  return (level, time, members, msg) => {
    const clock = `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${pad(time.getMilliseconds(), 3)}`
    const name = level.toUpperCase()
    let line = `${dim(`[${clock}]`)} ${colour ? paint(COLOURS[level], name) : name}:`
    if (msg !== undefined) line += ` ${visible(msg)}`
    // the members as the JSON line has them: the same redaction, the same written errors
    const pairs: string[] = []
    const frames: string[] = []
    for (const [key, value] of Object.entries(JSON.parse(`{${members}}`) as Record<string, unknown>)) {
      const error = isWrittenError(value)
      pairs.push(`${dim(`${visible(key)}=`)}${prettyValue(error ? `${value.type}: ${value.message}` : value)}`)
      if (error)
        frames.push(
          ...value.stack
            .split('\n')
            .filter((l) => /^\s+at /.test(l))
            .map((l) => `    ${visible(l.trim())}`),
        )
    }
    if (pairs.length > 0) line += `  ${pairs.join(' ')}`
    return `${[line, ...frames].join('\n')}\n`
  }
}

/**
 * A logger writing to `destination` (stdout by default). `format` auto: pretty lines when the
 * destination is a terminal (isTTY), JSON otherwise; colours only on a terminal.
 */
export function createLogger(level: LogLevel, destination: LogDestination = stdout(), format: LogFormatSetting = 'auto'): Logger {
  const threshold = level === 'silent' ? Infinity : LEVELS[level]
  const tty = destination.isTTY === true
  const render = (format === 'auto' ? (tty ? 'pretty' : 'json') : format) === 'json' ? jsonLine : prettyLine(tty)
  // `head`: the child's fields as JSON members, written after the service on every line.
  const make = (head: string): Logger => {
    const write = (name: LevelName): LogFn => {
      const number = LEVELS[name]
      return (fieldsOrMessage, message) => {
        if (number < threshold) return
        const fields = typeof fieldsOrMessage === 'string' ? undefined : fieldsOrMessage
        const msg = typeof fieldsOrMessage === 'string' ? fieldsOrMessage : message
        const own = fields ? JSON.stringify(fields, replacer).slice(1, -1) : ''
        destination.write(render(name, new Date(), head === '' || own === '' ? head + own : `${head},${own}`, msg))
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
        return make(head === '' || more === '' ? head + more : `${head},${more}`)
      },
    }
  }
  return make('')
}
