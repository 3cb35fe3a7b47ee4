// Each job kind's stages as data: their order, what each is and when it runs after a failure,
// and the polling body's log fields they fill. src/jobs/stages.ts gives each its body; this
// module imports nothing, so the HTTP layer, the docs and the CLI use the table without loading
// the job machinery (an idle agent does not load it: ~2.5 MB of RSS, docs/PERFORMANCE.md).
import type { JobKind } from './request.ts'

/** What a stage is, which decides when it runs after a failure. */
export type StageKind = 'lock' | 'check' | 'main' | 'transfer' | 'cleanup' | 'unlock'

/**
 * - ok: only while nothing has failed
 * - mainStarted: once a main or transfer stage was attempted, even after a failure (cleanup)
 * - lockAttempted: once the lock stage was attempted, whatever happened since (unlock)
 */
export type RunIf = 'ok' | 'mainStarted' | 'lockAttempted'

export interface StageInfo {
  name: string
  kind: StageKind
  runIf: RunIf
  /** Prefix of the polling body's `<prefix>_log` / `<prefix>_errorlog` fields, for script stages. */
  logField?: string
}

const script = (name: string, kind: StageKind, runIf: RunIf): StageInfo => ({ name, kind, runIf, logField: name.replaceAll('-', '_') })

export const STAGE_TABLE: Record<JobKind, readonly StageInfo[]> = {
  backup: [
    script('pre-backup-lock', 'lock', 'ok'),
    script('pre-backup-check', 'check', 'ok'),
    script('backup', 'main', 'ok'),
    { name: 'upload', kind: 'transfer', runIf: 'ok' },
    script('backup-cleanup', 'cleanup', 'mainStarted'),
    script('post-backup-unlock', 'unlock', 'lockAttempted'),
    // verify_after_upload: after the unlock, so the database is not held while the object is read back
    { name: 'verify-upload', kind: 'transfer', runIf: 'ok' },
  ],
  restore: [
    script('pre-restore-lock', 'lock', 'ok'),
    { name: 'download', kind: 'transfer', runIf: 'ok' },
    script('restore', 'main', 'ok'),
    script('restore-cleanup', 'cleanup', 'mainStarted'),
    script('post-restore-unlock', 'unlock', 'lockAttempted'),
  ],
  // No script, no lock: the stored object is read and checked (src/jobs/verify.ts).
  verify: [{ name: 'verify', kind: 'transfer', runIf: 'ok' }],
}

/** Whether a stage runs, given whether the job has failed and which kinds of stage it entered. */
export function shouldRun(stage: StageInfo, failed: boolean, attempted: ReadonlySet<StageKind>): boolean {
  switch (stage.runIf) {
    case 'ok':
      return !failed
    case 'mainStarted':
      return attempted.has('main') || attempted.has('transfer')
    case 'lockAttempted':
      return attempted.has('lock')
  }
}

/** Every `*_log` / `*_errorlog` field of a kind's polling body, in stage order. */
export function logFields(kind: JobKind): string[] {
  return STAGE_TABLE[kind].flatMap((s) => (s.logField ? [`${s.logField}_log`, `${s.logField}_errorlog`] : []))
}
