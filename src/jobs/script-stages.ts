// The body every script stage shares: the stage's script, run with its arguments under the
// stage's timeout and the job's cancel, its output kept in the job's log fields, and a stream
// beside it (streaming.ts) completed before the stage ends.
import { runScript, stageLimit } from '../scripts/run.ts'
import { scriptHelperEnabled } from '../scripts/spawner.ts'
import type { StageBody, StageContext } from './stage-context.ts'
import type { ScriptStream } from './streaming.ts'

interface ScriptStageExtras {
  /** Variables added to the script's environment for this stage. */
  env?: (ctx: StageContext) => Record<string, string>
  /** Runs after the script succeeded. */
  after?: (ctx: StageContext) => Promise<void>
  /** A stream beside the script (BACKUP_STREAM, RESTORE_STREAM). */
  stream?: (ctx: StageContext) => Promise<ScriptStream | undefined>
}

export const scriptStage =
  (args: (ctx: StageContext) => string[], options: ScriptStageExtras = {}): StageBody =>
  (info) => {
    const { name, kind } = info
    const logField = info.logField ?? name.replaceAll('-', '_')
    return {
      ...info,
      // A held script cannot act before onSpawn's write, so that write can carry the stage's
      // start. Not so for a script Node starts (it runs before its pid is known) nor for a stage
      // with a stream, which is set up before the script starts.
      recordsItsStart: () => options.stream === undefined && scriptHelperEnabled(),
      async run(ctx) {
        // One timeout and one cancel for the whole stage: the script, and a stream it leaves behind.
        const limit = stageLimit(name, ctx.signal, kind === 'main' ? ctx.scriptTimeoutMs : ctx.hookTimeoutMs)
        try {
          const cwd = ctx.scriptDirectory(kind === 'cleanup' || kind === 'unlock')
          const stream = await options.stream?.(ctx)
          const signals = [limit.signal, stream?.stopScript].filter((s) => s !== undefined)
          let group: number | undefined
          const running = runScript({
            stage: name,
            scriptsPath: ctx.scriptsPath,
            args: args(ctx),
            cwd,
            env: { ...ctx.scriptEnv, ...options.env?.(ctx), ...stream?.env },
            secrets: ctx.secrets,
            logMaxBytes: ctx.logMaxBytes,
            signal: signals.length > 0 ? AbortSignal.any(signals) : undefined,
            onSpawn(pid, held, startTime) {
              group = pid
              // recorded so that a restarted agent can find a group a killed one left running
              if (startTime !== undefined) ctx.job.script = { pid, startTime, stage: name, ...(held ? { held: true as const } : {}) }
              ctx.changed()
            },
            onRunning() {
              // From now on a recorded pid that is gone is a script that ran (recovery.ts).
              const recorded = ctx.job.script
              if (recorded?.pid !== group || !recorded?.held) return
              ctx.job.script = { pid: recorded.pid, startTime: recorded.startTime, stage: name }
              ctx.changed()
            },
          })
          // A script that could not even start (missing, unsafe) must not leave its stream open.
          const result = await running.catch(async (error: unknown) => {
            await stream?.finish({ scriptSucceeded: false, group, stage: limit.signal })
            throw error
          })
          ctx.job.logs[`${logField}_log`] = result.stdout
          ctx.job.logs[`${logField}_errorlog`] = result.stderr
          try {
            // The script stays recorded while the agent waits for its stream: a restarted agent
            // then stops what its group left holding the stream (recovery.ts, stopOrphan).
            await stream?.finish({ scriptSucceeded: result.failure === undefined, group, stage: limit.signal })
          } finally {
            ctx.job.script = undefined
          }
          if (result.failure) throw result.failure
          await options.after?.(ctx)
        } finally {
          limit.clear()
        }
      },
    }
  }
