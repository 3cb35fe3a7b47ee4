// Streaming mode, opt-in per script (docs/INTEGRITY.md):
// - BACKUP_STREAM: a named pipe the backup script may write its dump to. The first byte starts
//   the upload of `<file_name_without_type>.osb` (compressed, encrypted, hashed on the way, its
//   SHA-256 appended as the trailer) while the script still runs; no temp file. A script that
//   ignores the pipe keeps the file contract.
// - RESTORE_STREAM: for a restore script that mentions it, the agent downloads, authenticates,
//   decrypts and decompresses the object into a named pipe the script reads.
// Once the script exited, stream-end.ts decides how long its stream may stay open.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { JobError } from '../errors.ts'
import { openFifoForReading, openFifoForWriting, type FifoEnd } from '../util/pipes/fifo.ts'
import { hasTrailer, STREAM_SUFFIX, type StreamHeader } from '../integrity/format.ts'
import { DIGEST_LOCATION, requireDigestWhereMetadataSays } from '../integrity/trailer.ts'
import { findScript } from '../scripts/run.ts'
import type { Storage } from '../storage/storage.ts'
import type { Job } from './job.ts'
import type { StageContext } from './stage-context.ts'
import { streamAfterScript, type ScriptExit } from './stream-end.ts'

/** The .osb codec (zlib, zstd, encryption), loaded with the first stream rather than at start-up. */
export const loadCodec = () => import('../integrity/codec.ts')

/** What a script stage needs from a stream that runs beside its script. */
export interface ScriptStream {
  env: Record<string, string>
  /** Aborted when the transfer fails while the script runs: the script is stopped. */
  stopScript: AbortSignal
  /**
   * After the script exited: completes (or, when the script failed, removes) the transfer, within
   * the stage's limits; a stream the script left held fails the stage (stream-end.ts).
   */
  finish(exit: ScriptExit): Promise<void>
}

/**
 * Object metadata that says what a streamed object is (also in its header), and where its digest
 * is: `sha256-location: trailer` (S3 can set metadata only when an upload starts, before the
 * digest exists; backends that can add it afterwards cheaply also store `sha256`).
 */
function formatMetadata(header: StreamHeader): Record<string, string> {
  return {
    format: `osb${header.version}`,
    compression: header.compression,
    encryption: header.encryption.mode,
    ...(hasTrailer(header) ? { [DIGEST_LOCATION]: 'trailer' } : {}),
  }
}

async function* prepend(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield first
  for (;;) {
    const next = await rest.next()
    if (next.done) return
    yield next.value
  }
}

/** A backend that can take a stream of unknown length and add its digest afterwards. */
type StreamingStorage = Storage & Required<Pick<Storage, 'uploadStream' | 'storeChecksum'>>
const canUploadStream = (storage: Storage): storage is StreamingStorage => Boolean(storage.uploadStream && storage.storeChecksum)

export async function openBackupStream(ctx: StageContext): Promise<ScriptStream | undefined> {
  const { job } = ctx
  if (job.request.destination.skipStorage) return undefined
  const storage = ctx.storage()
  if (!canUploadStream(storage)) return undefined
  const fifo = await openFifoForReading(join(ctx.pinnedDirectory(), '.backup.stream'), join(ctx.directory, '.backup.stream'))
  const stop = new AbortController()
  const upload = new AbortController()
  ctx.signal?.addEventListener('abort', () => upload.abort(ctx.signal?.reason), { once: true })
  // Loaded while the script starts up rather than after its first byte: until they are, the
  // agent does not read the pipe and the script waits (a second or more for the AWS SDK under
  // load). A script that keeps the file contract just loaded them a little earlier.
  const codec = loadCodec()
  codec.catch(() => {}) // awaited only once the script writes; the upload reports a failure
  const backend = storage.prepare?.()
  backend?.catch(() => {}) // a load failure is reported by the upload that needs it

  const transfer = backupTransfer(ctx, storage, fifo, upload.signal, codec, backend)
  transfer.catch((error: Error) => stop.abort(error.message))

  return {
    env: { BACKUP_STREAM: fifo.path },
    stopScript: stop.signal,
    finish: (exit) => finishBackupStream(job, storage, fifo, upload, transfer, exit),
  }
}

/** The upload, from the script's first byte; undefined when the script used the file contract. */
async function backupTransfer(
  ctx: StageContext,
  storage: StreamingStorage,
  fifo: FifoEnd,
  signal: AbortSignal,
  codec: ReturnType<typeof loadCodec>,
  backend: Promise<void> | undefined,
) {
  const { job } = ctx
  const input = fifo.chunks
  const first = await input.next()
  if (first.done) return undefined // the script used the file contract
  const filename = `${ctx.fileBase}${STREAM_SUFFIX}`
  await backend
  const { header, encode, sha256 } = (await codec).createEncoder({
    compression: job.request.compression ? ctx.streamCompression : 'none',
    encryptionKey: job.request.encryptionKey,
  })
  job.filename = filename
  job.uploading = filename
  ctx.changed()
  const { size } = await storage.uploadStream(encode(prepend(first.value, input)), filename, {
    ...ctx.transferOptions(null),
    signal,
    metadata: formatMetadata(header),
  })
  return { filename, size, sha256: sha256(), header }
}

async function finishBackupStream(
  job: Job,
  storage: StreamingStorage,
  fifo: FifoEnd,
  upload: AbortController,
  transfer: ReturnType<typeof backupTransfer>,
  exit: ScriptExit,
): Promise<void> {
  // No process opens the pipe any more: a writer that came after the script would add to a
  // stream whose script has ended.
  fifo.unlink()
  fifo.releaseKeeper()
  const giveUp = (reason: string) => {
    upload.abort(reason)
    fifo.abandon(reason)
  }
  // The stage's timeout and cancel also end the upload's last parts.
  const onStageAbort = () => giveUp(String(exit.stage?.reason ?? 'cancelled'))
  exit.stage?.addEventListener('abort', onStageAbort, { once: true })
  try {
    const failure = await streamAfterScript(
      { what: 'backup', variable: 'BACKUP_STREAM', pipe: fifo.identity, settled: Promise.race([fifo.ended, transfer]), giveUp },
      exit,
    )
    let streamed: Awaited<typeof transfer>
    try {
      streamed = await transfer
    } catch (error) {
      if (failure) throw failure
      if (!exit.scriptSucceeded) return // the script's failure is the stage's
      if (exit.stage?.aborted) throw new JobError(String(exit.stage.reason))
      throw error
    }
    if (failure) throw failure
    if (!streamed || !exit.scriptSucceeded) return
    // Swift (a POST) and LOCAL (a sidecar file) also keep it as metadata; S3 needs no step.
    await storage.storeChecksum(streamed.filename, streamed.sha256, formatMetadata(streamed.header))
    job.streamed = true
    job.filesize = streamed.size
    job.checksum = streamed.sha256
  } finally {
    exit.stage?.removeEventListener('abort', onStageAbort)
    job.uploading = undefined
    job.progress = undefined
    fifo.dispose()
  }
}

type ReadableStorage = Storage & Required<Pick<Storage, 'read'>>
const canRead = (storage: Storage): storage is ReadableStorage => Boolean(storage.read)

/** Whether the restore script asked for the stream (it mentions RESTORE_STREAM). */
export async function restoreScriptStreams(scriptsPath: string): Promise<boolean> {
  try {
    return (await readFile(findScript(scriptsPath, 'restore'), 'utf8')).includes('RESTORE_STREAM')
  } catch {
    return false
  }
}

export async function openRestoreStream(ctx: StageContext): Promise<ScriptStream | undefined> {
  const { job } = ctx
  const { filename } = job.request.destination
  if (!job.streamRestore) return undefined
  const storage = ctx.storage()
  if (!canRead(storage))
    throw new JobError('this storage backend cannot stream a restore; remove RESTORE_STREAM from the restore script to restore from a file')
  const fifo = await openFifoForWriting(join(ctx.pinnedDirectory(), '.restore.stream'), join(ctx.directory, '.restore.stream'))
  const stop = new AbortController()
  const transfer = (async () => {
    const reader = await fifo.connected
    const { createDecoder } = await loadCodec()
    const object = await storage.read(filename, { ...ctx.transferOptions(null), signal: ctx.signal })
    let verified: { checksum: string; trailer: boolean } | undefined
    // The decoder checks the digest (the trailer, and the stored one) when the input ends, before
    // the script sees the end of the stream. Encrypted frames were each authenticated before the
    // script got them; for the rest this is the first moment the whole digest is known (the
    // script may have read the data already): a mismatch then fails the job and stops the script.
    const decoder = createDecoder(job.request.encryptionKey, {
      what: filename,
      storedSha256: object.sha256,
      onHeader: (header) => requireDigestWhereMetadataSays(header, object.metadata, filename),
      onVerified: ({ checksum, header }) => (verified = { checksum, trailer: hasTrailer(header) }),
    })
    await pipeline(object.chunks, decoder, reader)
    if (!verified) throw new JobError(`${filename}: the streamed restore ended before its checksum was verified`)
    job.checksum = verified.trailer ? verified.checksum : object.sha256
    job.checksumVerified = verified.trailer || object.sha256 !== undefined
    if (!job.checksumVerified && ctx.requireChecksum) throw new JobError(`${filename} has no stored checksum and require_checksum is true`)
  })()
  let transferError: Error | undefined
  transfer.catch((error: Error) => {
    transferError = error
    stop.abort(error.message)
  })
  return {
    env: { RESTORE_STREAM: fifo.path },
    stopScript: stop.signal,
    async finish(exit) {
      // The transfer failed while the script ran (and stopped it): that is the stage's failure.
      const failedFirst = transferError !== undefined
      // A reader that came after the script would take the rest of a restore whose script ended.
      // Until one has connected, the name stays for a reader the script left starting up.
      if (fifo.isConnected()) fifo.unlink()
      const failure = await streamAfterScript(
        // A script that stopped reading must not leave the transfer waiting on a full pipe.
        {
          what: 'restore',
          variable: 'RESTORE_STREAM',
          pipe: fifo.identity,
          settled: transfer,
          whenUnheld: () => fifo.dispose(),
          giveUp: () => fifo.dispose(),
        },
        exit,
      )
      fifo.dispose()
      await transfer.catch(() => {})
      job.progress = undefined
      if (failure) throw failure
      if (transferError && (exit.scriptSucceeded || failedFirst))
        throw transferError instanceof JobError ? transferError : new JobError(transferError.message)
    },
  }
}
