// The stages of a backup and of a restore, as data (SPEC §5): STAGE_TABLE (stage-names.ts) says
// their order and when each runs (`runIf`, shouldRun); here each gets its body, by name. The
// runner walks the result. Script stages differ only in their arguments (script-stages.ts runs
// them); the transfers' bodies are in transfer.ts, the streams beside a script in streaming.ts.
import type { JobKind } from './request.ts'
import { scriptStage } from './script-stages.ts'
import type { Stage, StageBody, StageContext } from './stage-context.ts'
import { STAGE_TABLE, type StageInfo } from './stage-names.ts'
import { openBackupStream, openRestoreStream } from './streaming.ts'
import { downloadRestoreFile, recordBackupFile, restoreFileArgument, uploadBackupFile, usesStorage } from './transfer.ts'
import { verifyStoredObject, verifyUploadedObject } from './verify.ts'

export type { RunIf, StageKind } from './stage-names.ts'
export { logFields, shouldRun } from './stage-names.ts'

const db = (ctx: StageContext) => ctx.job.request.database

/**
 * The database password and the encryption key. Positional arguments are world-readable in
 * /proc/<pid>/cmdline, a process's environment is not: with script_secret_args=false they are
 * passed as empty arguments (so positions stay the same) and as DB_PASSWORD / ENCRYPTION_KEY.
 */
const secretArg = (ctx: StageContext, value: string) => (ctx.scriptSecretArgs ? value : '')
const secretEnv = (ctx: StageContext): Record<string, string> =>
  ctx.scriptSecretArgs ? {} : { DB_PASSWORD: db(ctx).password, ENCRYPTION_KEY: ctx.job.request.encryptionKey }

const scriptOptions = (ctx: StageContext) => [
  ctx.job.id,
  String(ctx.job.request.compression),
  secretArg(ctx, ctx.job.request.encryptionKey),
]

const BODIES: Record<string, StageBody> = {
  'pre-backup-lock': scriptStage((c) => [db(c).database]),
  'pre-backup-check': scriptStage((c) => [db(c).database]),
  backup: scriptStage((c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, c.fileBase, ...scriptOptions(c)], {
    env: secretEnv,
    after: recordBackupFile,
    stream: openBackupStream,
  }),
  upload: (info) => ({ ...info, applies: (job) => usesStorage(job) && !job.streamed, run: uploadBackupFile }),
  'backup-cleanup': scriptStage((c) => [db(c).database, c.job.id]),
  'post-backup-unlock': scriptStage((c) => [db(c).database]),
  'verify-upload': (info) => ({ ...info, applies: (job, ctx) => ctx.verifyAfterUpload && usesStorage(job), run: verifyUploadedObject }),
  'pre-restore-lock': scriptStage((c) => [c.job.id]),
  download: (info) => ({ ...info, applies: (job) => usesStorage(job) && !job.streamRestore, run: downloadRestoreFile }),
  restore: scriptStage(
    (c) => [db(c).host, db(c).username, secretArg(c, db(c).password), db(c).database, restoreFileArgument(c.job), ...scriptOptions(c)],
    {
      env: secretEnv,
      stream: openRestoreStream,
    },
  ),
  'restore-cleanup': scriptStage((c) => [c.job.id]),
  'post-restore-unlock': scriptStage(() => []),
  verify: (info) => ({ ...info, run: verifyStoredObject }),
}

const withBodies = (table: readonly StageInfo[]): readonly Stage[] =>
  table.map((info) => {
    const body = BODIES[info.name]
    if (!body) throw new Error(`stage ${info.name} has no body in src/jobs/stages.ts`)
    return body(info)
  })

export const BACKUP_STAGES: readonly Stage[] = withBodies(STAGE_TABLE.backup)
export const RESTORE_STAGES: readonly Stage[] = withBodies(STAGE_TABLE.restore)
export const STAGES: Record<JobKind, readonly Stage[]> = {
  backup: BACKUP_STAGES,
  restore: RESTORE_STAGES,
  verify: withBodies(STAGE_TABLE.verify),
}
