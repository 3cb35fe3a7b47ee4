// The agent's logger: pino JSON lines on stdout. Nothing logs a raw request body; these redact
// paths are the second line of defence for fields that carry secrets.
import pino, { type Logger } from 'pino'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  '*.password',
  '*.authSecret',
  '*.encryption_key',
  '*.encryptionKey',
  'password',
  'authSecret',
  'encryption_key',
]

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'osb-backup-agent' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  })
}
