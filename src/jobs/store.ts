// The persistent job store: one SQLite file (node:sqlite) in directory_state. Every change of a
// job is written here before polls can see it, so an agent restart (or a kill) loses nothing.
//
// A row holds the polling body exactly as served and a small recovery record. WAL with
// synchronous=NORMAL survives a killed process (the threat here); only a power cut may lose the
// last transactions, which the manager's next poll then shows as the job's previous state.
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import type { JobStatus } from './job.ts'
import type { JobKind } from './request.ts'
import { pendingSteps } from './recovery-record.ts'
import { crypto } from '../util/builtins.ts'

export interface StoredJob {
  kind: JobKind
  id: string
  status: JobStatus
  body: string
  /** JSON of a RecoveryRecord (src/jobs/recovery.ts). */
  record: string
  startedAt: number
  endedAt: number | null
}

/** A stored job without its body and record (JobStore.keys). */
export type StoredKey = Omit<StoredJob, 'body' | 'record'>

type Row = Record<string, unknown>
/** A row of KEYS_QUERY and one of OWING_QUERY, as arrays. */
type KeyRow = [JobKind, string, JobStatus, number, number | null]
type OwingRow = [JobKind, string, string, string]

/**
 * A record that may owe work at start: a running job's, or one whose record has pending steps
 * (`"pending":["`, JSON.stringify's form of a non-empty list; JobRegistry.load parses those).
 * The same text in the jobs_owing index and in OWING_QUERY: SQLite uses a partial index only
 * for a query whose WHERE matches the index's.
 */
const OWING = `status = 'RUNNING' OR instr(record, '"pending":["') > 0`
/** Every job's key, oldest first: answered from the jobs_keys index alone. */
export const KEYS_QUERY = 'SELECT kind, id, status, started_at, ended_at FROM jobs ORDER BY started_at'
/** The body and record of the jobs that may owe work: answered through the jobs_owing index. */
export const OWING_QUERY = `SELECT kind, id, body, record FROM jobs WHERE ${OWING}`

const storedKey = (r: Row): StoredKey => ({
  kind: r.kind as JobKind,
  id: r.id as string,
  status: r.status as JobStatus,
  startedAt: r.started_at as number,
  endedAt: (r.ended_at as number | null) ?? null,
})

const storedJob = (r: Row, body: string, record: string): StoredJob => ({ ...storedKey(r), body, record })

/** Each entry upgrades the schema by one version; never edit one that has shipped. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     kind TEXT NOT NULL,
     id TEXT NOT NULL,
     status TEXT NOT NULL,
     body TEXT NOT NULL,
     record TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     ended_at INTEGER,
     PRIMARY KEY (kind, id)
   );
   CREATE INDEX jobs_by_end ON jobs (ended_at);`,
  // the key that seals the secrets a running job's record keeps (src/jobs/sealed-secrets.ts)
  `CREATE TABLE record_key (key BLOB NOT NULL);`,
  // JobStore.keys at start: a thousand jobs' keys from an index of a few pages instead of every
  // row's pages (2 MB, half a start's page faults on the bench VM; docs/PERFORMANCE.md)
  `CREATE INDEX jobs_keys ON jobs (started_at, kind, id, status, ended_at);
   CREATE INDEX jobs_owing ON jobs (kind, id) WHERE ${OWING};`,
]

/**
 * What an operator reads when a write failed: it names the store and a likely cause, never the
 * path (polling bodies and 503 answers carry it). SQLite's primary result codes: 13 FULL, 8
 * READONLY, 10 IOERR; the errno codes for failures outside SQLite.
 */
export function storeWriteProblem(error: unknown): string {
  const { errcode, code } = (error ?? {}) as { errcode?: unknown; code?: unknown }
  const primary = typeof errcode === 'number' ? errcode & 0xff : undefined
  const cause =
    primary === 13 || code === 'ENOSPC'
      ? 'disk full?'
      : primary === 8 || code === 'EROFS'
        ? 'read-only filesystem?'
        : primary === 10 || code === 'EIO'
          ? 'I/O error'
          : 'see the agent log'
  return `the job store could not be written (${cause})`
}

/**
 * secure_delete: content a write replaces or frees is overwritten with zeros, so that the
 * secrets a running job's record holds (docs/DURABILITY.md) do not outlive it in free space.
 */
/** How long the WAL may keep a finished job's earlier record versions (docs/DURABILITY.md). */
export const CHECKPOINT_DELAY_MS = 1000

const PRAGMAS = 'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;'

/**
 * Opens the store in WAL mode, its index shared through a `-shm` file. Creating or sizing that
 * file fails on a full disk: then the index is kept in memory instead (exclusive locking, no
 * other process can open the store meanwhile), so the agent still starts and reads its store
 * (writes wait, see JobRegistry) instead of failing to start in a loop.
 */
function openDatabase(path: string): DatabaseSync {
  const open = (pragmas: string) => {
    const db = new DatabaseSync(path)
    try {
      db.exec(pragmas)
      db.prepare('PRAGMA user_version').get() // the first read maps the index
      return db
    } catch (error) {
      db.close()
      throw error
    }
  }
  try {
    return open(PRAGMAS)
  } catch (error) {
    try {
      return open(`PRAGMA locking_mode = EXCLUSIVE; ${PRAGMAS}`)
    } catch {
      throw error
    }
  }
}

/** The open database and its statements. */
interface Open {
  db: DatabaseSync
  save: StatementSync
  remove: StatementSync
  expired: StatementSync
  overflow: StatementSync
  /** Prepared on the first poll of a job whose body is not in memory. */
  body?: StatementSync
}

/** A failure to create or write the store that more space or a writable filesystem would cure. */
function isWriteProblem(error: unknown): boolean {
  const { errcode, code } = (error ?? {}) as { errcode?: unknown; code?: unknown }
  const primary = typeof errcode === 'number' ? errcode & 0xff : undefined
  // SQLite: 13 FULL, 8 READONLY, 10 IOERR, 14 CANTOPEN (a file that cannot be created)
  return (primary !== undefined && [13, 8, 10, 14].includes(primary)) || ['ENOSPC', 'EDQUOT', 'EROFS', 'EIO'].includes(String(code))
}

export class JobStore {
  readonly #directory: string
  readonly #path: string
  #open: Open | undefined
  #notCreated: unknown
  /** The files the open database writes (jobs.sqlite and its WAL), to notice when their paths lead elsewhere (relocated). */
  #files: { path: string; dev: number; ino: number }[] | undefined
  /** The record key once read or made: a store made again at the path gets the same one. */
  #key: Buffer | undefined
  /** Set while a checkpoint is due (#dropOldFramesSoon). */
  #checkpointTimer: NodeJS.Timeout | undefined

  /**
   * Opens (or creates) the store. One that holds no job yet (no file, or an empty one) but
   * cannot be created now (a full disk, a read-only filesystem) is created by the first write
   * that can: until then it reads as empty and every write throws, as a full store does. A store
   * that holds jobs and cannot be opened stops the start (recovery must read what is owed).
   */
  constructor(directory: string) {
    this.#directory = directory
    this.#path = join(directory, 'jobs.sqlite')
    try {
      this.#open = this.#create()
      // a previous process may have stopped before its due checkpoint
      this.#dropOldFramesSoon()
    } catch (error) {
      if (!isWriteProblem(error) || holdsData(this.#path)) throw error
      this.#notCreated = error
    }
  }

  /** Why a store that holds no job yet could not be created at start; undefined once open. */
  get notCreated(): unknown {
    return this.#open ? undefined : this.#notCreated
  }

  /** Creates a store that could not be created at start; throws while it still cannot be. */
  ensureOpen(): void {
    this.#opened()
  }

  #opened(): Open {
    this.#open ??= this.#create()
    return this.#open
  }

  #create(): Open {
    try {
      mkdirSync(this.#directory, { recursive: true, mode: 0o700 })
    } catch (error) {
      // A recursive mkdir on a read-only filesystem reports ENOENT: a plain one tells the cause.
      if ((error as { code?: string }).code !== 'ENOENT' || !existsSync(dirname(this.#directory))) throw error
      mkdirSync(this.#directory, { mode: 0o700 })
    }
    chmodSync(this.#directory, 0o700)
    const db = openDatabase(this.#path)
    try {
      try {
        migrate(db, this.#path)
      } catch (error) {
        // A store that has its jobs table is read even when a later migration cannot be written
        // now (a full disk): only writes wait, and the next start migrates.
        if (!isWriteProblem(error) || schemaVersion(db) < 1) throw error
      }
      this.#restrictFiles()
      this.#files = [this.#path, `${this.#path}-wal`].flatMap((path) => {
        const found = statSync(path, { throwIfNoEntry: false })
        return found ? [{ path, dev: found.dev, ino: found.ino }] : []
      })
      if (this.#key !== undefined && schemaVersion(db) >= 2 && db.prepare('SELECT 1 FROM record_key').get() === undefined) {
        // made again after relocated(): the records written to it again are sealed with this key
        db.prepare('INSERT INTO record_key (key) VALUES (?)').run(this.#key)
      }
      // A finished job whose recovery still owes steps (record.pending) is kept like a running one.
      // (An unreadable record owes nothing: recovery could not read it either.)
      const finished = `status != 'RUNNING' AND (NOT json_valid(record) OR coalesce(json_array_length(record, '$.pending'), 0) = 0)`
      return {
        db,
        save: db.prepare(
          `INSERT INTO jobs (kind, id, status, body, record, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (kind, id) DO UPDATE SET status = excluded.status, body = excluded.body, record = excluded.record,
             started_at = excluded.started_at, ended_at = excluded.ended_at`,
        ),
        remove: db.prepare('DELETE FROM jobs WHERE kind = ? AND id = ?'),
        expired: db.prepare(`SELECT kind, id FROM jobs WHERE ${finished} AND ended_at < ?`),
        overflow: db.prepare(`SELECT kind, id FROM jobs WHERE ${finished} ORDER BY ended_at DESC, rowid DESC LIMIT -1 OFFSET ?`),
      }
    } catch (error) {
      db.close()
      throw error
    }
  }

  get schemaVersion(): number {
    return schemaVersion(this.#opened().db)
  }

  /**
   * The key that seals the secrets of running jobs' records, made on first use. Kept in the
   * store itself, so that it is there whenever the records are (a copy of the state folder, a
   * restored backup of it). Throws when it can be neither read nor made (a store that cannot
   * be written yet).
   */
  recordKey(): Buffer {
    const { db } = this.#opened()
    const read = () => (db.prepare('SELECT key FROM record_key LIMIT 1').get() as { key: Uint8Array } | undefined)?.key
    let key = read()
    if (key === undefined) {
      db.prepare('INSERT INTO record_key (key) VALUES (?)').run(crypto().randomBytes(32))
      key = read()
    }
    if (key?.length !== 32) throw new Error('the record key in the job store is damaged')
    this.#key = Buffer.from(key)
    return this.#key
  }

  /**
   * Whether jobs.sqlite (or its WAL) at its path is no longer the file this store has open:
   * directory_state was removed, moved, or replaced (a symlink elsewhere) while the agent ran.
   * SQLite would go on writing to the unlinked files without an error, and every record would be
   * gone at the next start. Then every row the open files hold is read (they are still readable
   * through the open handle, its WAL included) and returned, and the handle is closed: the next
   * write opens (or creates) the store at its path again, and the caller must write these rows to
   * it (replaceAll). Undefined while the files are the ones open. Throws, leaving the handle open
   * (a later call tries again), when the rows cannot be read.
   */
  relocated(): StoredJob[] | undefined {
    if (this.#open === undefined || this.#files === undefined) return undefined
    const same = (file: { path: string; dev: number; ino: number }) => {
      const now = statSync(file.path, { throwIfNoEntry: false })
      return now !== undefined && now.dev === file.dev && now.ino === file.ino
    }
    try {
      if (this.#files.every(same)) return undefined
    } catch {
      // a path that cannot be looked at any more (EACCES, ELOOP): not the file this store has open
    }
    const rows = this.all()
    try {
      this.#open.db.close()
    } catch {
      // closing the orphaned files cannot fail in a way that matters
    }
    this.#open = undefined
    this.#files = undefined
    return rows
  }

  /** The database, its WAL and shared-memory files hold job records: owner only. */
  #restrictFiles(): void {
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        chmodSync(this.#path + suffix, 0o600)
      } catch {
        // -wal/-shm exist only while the database is open in WAL mode
      }
    }
  }

  all(): StoredJob[] {
    if (!this.#open) return [] // not created yet: holds no job
    const rows = this.#open.db.prepare('SELECT kind, id, status, body, record, started_at, ended_at FROM jobs ORDER BY started_at').all()
    return rows.map((r) => storedJob(r, r.body as string, r.record as string))
  }

  /**
   * Every job, oldest first, with its body and record only where they may be needed at start
   * (OWING). The others' are read when asked for (body()): a start with a thousand records makes
   * no string of theirs and reads none of their pages. Rows come as arrays: node:sqlite builds
   * a row object property by property (a third of the query's time at start).
   */
  keys(): (StoredKey | StoredJob)[] {
    if (!this.#open) return []
    const { db } = this.#open
    const owingQuery = db.prepare(OWING_QUERY)
    owingQuery.setReturnArrays(true)
    const owing = new Map<string, OwingRow>()
    for (const row of owingQuery.all() as unknown as OwingRow[]) owing.set(`${row[0]}/${row[1]}`, row)
    const keysQuery = db.prepare(KEYS_QUERY)
    keysQuery.setReturnArrays(true)
    return (keysQuery.all() as unknown as KeyRow[]).map(([kind, id, status, startedAt, endedAt]) => {
      const key: StoredKey = { kind, id, status, startedAt, endedAt }
      const full = owing.size === 0 ? undefined : owing.get(`${kind}/${id}`)
      return full === undefined ? key : { ...key, body: full[2], record: full[3] }
    })
  }

  /** The polling body of a stored job; undefined when the store does not hold it (or is not created yet). */
  body(kind: JobKind, id: string): string | undefined {
    if (!this.#open) return undefined
    this.#open.body ??= this.#open.db.prepare('SELECT body FROM jobs WHERE kind = ? AND id = ?')
    return this.#open.body.get(kind, id)?.body as string | undefined
  }

  /** The ids of the stored backups whose polling body names `filename` (a verify looks for its backup). */
  backupsNaming(filename: string): Set<string> {
    if (!this.#open) return new Set()
    const rows = this.#open.db
      .prepare(`SELECT id FROM jobs WHERE kind = 'backup' AND CASE WHEN json_valid(body) THEN json_extract(body, '$.filename') END = ?`)
      .all(filename)
    return new Set(rows.map((r) => r.id as string))
  }

  save(job: StoredJob): void {
    this.#opened().save.run(job.kind, job.id, job.status, job.body, job.record, job.startedAt, job.endedAt)
    if (job.status !== 'RUNNING' && pendingSteps(job.record).length === 0) this.#dropOldFramesSoon()
  }

  /**
   * Makes the store hold exactly these rows, in one transaction with one checkpoint after it: the
   * store made again after relocated() takes every job's row at once (one by one, a thousand rows
   * blocked polls for seconds), and a store whose WAL was lost drops the rows removed since.
   * All or nothing; throws as save() does.
   */
  replaceAll(rows: readonly StoredJob[]): void {
    const open = this.#opened()
    open.db.exec('BEGIN')
    try {
      open.db.exec('DELETE FROM jobs')
      for (const job of rows) open.save.run(job.kind, job.id, job.status, job.body, job.record, job.startedAt, job.endedAt)
      open.db.exec('COMMIT')
    } catch (error) {
      try {
        open.db.exec('ROLLBACK')
      } catch {
        // SQLite rolled back already (a full disk)
      }
      throw error
    }
    this.#dropOldFrames()
  }

  /**
   * The checkpoint of #dropOldFrames, at most CHECKPOINT_DELAY_MS after the write that made it
   * due, for every job that ended meanwhile: it syncs both files (~1.3 ms on the bench VM), and
   * once per job it was a tenth of a no-op backup's time. close() runs a due one at once.
   */
  #dropOldFramesSoon(): void {
    if (this.#checkpointTimer !== undefined) return
    this.#checkpointTimer = setTimeout(() => this.#dropOldFrames(), CHECKPOINT_DELAY_MS)
    this.#checkpointTimer.unref()
  }

  /**
   * The record of a job that no longer owes anything holds no secret, but the WAL still holds
   * its earlier versions: a truncating checkpoint copies the newest pages into the database
   * (where secure_delete zeroed the old content) and empties the WAL. A checkpoint that cannot
   * run now (a full disk) is left to a later one.
   */
  #dropOldFrames(): void {
    clearTimeout(this.#checkpointTimer)
    this.#checkpointTimer = undefined
    try {
      this.#open?.db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    } catch {
      // the row is written; its old frames go with the next checkpoint that succeeds
    }
  }

  /**
   * Hands SQLite's page cache back (up to its 2 MB of the store's pages, cached while polls and
   * jobs read and wrote rows): the agent calls it once no job runs, before its collection.
   */
  releaseMemory(): void {
    try {
      this.#open?.db.exec('PRAGMA shrink_memory')
    } catch {
      // a store that cannot be used now keeps its cache; the next idle spell tries again
    }
  }

  remove(kind: JobKind, id: string): void {
    this.#opened().remove.run(kind, id)
  }

  /**
   * Finished jobs that ended before `endedBefore` or beyond the newest `keep`, to prune; never a
   * running job or one whose recovery still owes steps.
   */
  prunable(endedBefore: number, keep: number): { kind: JobKind; id: string }[] {
    const seen = new Set<string>()
    const out: { kind: JobKind; id: string }[] = []
    if (!this.#open) return []
    for (const row of [...this.#open.expired.all(endedBefore), ...this.#open.overflow.all(keep)]) {
      const key = `${row.kind}/${row.id}`
      if (seen.has(key)) continue
      seen.add(key)
      out.push({ kind: row.kind as JobKind, id: row.id as string })
    }
    return out
  }

  close(): void {
    if (this.#checkpointTimer !== undefined) this.#dropOldFrames()
    this.#open?.db.close()
  }
}

/** Whether a store file with content is there (an empty or missing one holds no job). */
function holdsData(path: string): boolean {
  try {
    return statSync(path).size > 0
  } catch (error) {
    return (error as { code?: string }).code !== 'ENOENT' // unreadable: assume it holds jobs
  }
}

function schemaVersion(db: DatabaseSync): number {
  return (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version
}

function migrate(db: DatabaseSync, path: string): void {
  const from = schemaVersion(db)
  if (from > MIGRATIONS.length) {
    throw new Error(`${path} has schema version ${from}, newer than this agent knows (${MIGRATIONS.length}); use a newer agent`)
  }
  for (let version = from; version < MIGRATIONS.length; version++) {
    db.exec('BEGIN')
    try {
      db.exec(MIGRATIONS[version] as string)
      db.exec(`PRAGMA user_version = ${version + 1}`)
      db.exec('COMMIT')
    } catch (error) {
      // SQLite has rolled back already after some failures (a full disk): the cause is `error`
      try {
        db.exec('ROLLBACK')
      } catch {
        // no transaction left to roll back
      }
      throw error
    }
  }
}
