// The agent's logger: pino JSON lines on stdout. Nothing logs a raw request body; these redact
// paths are the second line of defence for fields that carry secrets.
import pino, { type DestinationStream, type Logger } from 'pino'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'authorization',
  // request fields and the variables scripts get them in
  ...['password', 'authSecret', 'encryption_key', 'encryptionKey', 'clientPassword', 'DB_PASSWORD', 'ENCRYPTION_KEY', 'S3_AUTHSECRET', 'SWIFT_PASSWORD'].flatMap((name) => [name, `*.${name}`]),
]

/** Lines go to stdout, or to `destination` (tests). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'osb-backup-agent' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  }
  return destination ? pino(options, destination) : pino(options)
}
