// The restore's download stage, called directly (the trigger refuses some of these names before
// a job exists; the stage checks them again where it uses them): no name leads a write outside
// the job directory, nothing is written through a link, nothing is replaced without
// allowed_to_delete_files.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { JobError } from '../../../src/errors.ts'
import { createEncoder } from '../../../src/integrity/codec.ts'
import type { Job } from '../../../src/jobs/job.ts'
import type { StageContext } from '../../../src/jobs/stage-context.ts'
import { RESTORE_STAGES } from '../../../src/jobs/stages.ts'
import type { Storage, TransferOptions } from '../../../src/storage/storage.ts'

const DATA = Buffer.from('the rows of a dump\n'.repeat(100))

async function encoded(data: Buffer): Promise<Buffer> {
  const encoder = createEncoder({ compression: 'none', encryptionKey: '' })
  const parts: Buffer[] = []
  for await (const chunk of encoder.encode(
    (async function* () {
      yield data
    })(),
  ))
    parts.push(Buffer.from(chunk))
  return Buffer.concat(parts)
}
const OSB = await encoded(DATA)

/** A backend that writes the object's bytes into the file it is given (and may do more meanwhile). */
function fakeStorage(bytes: (filename: string) => Buffer, during: () => void = () => {}): Storage {
  return {
    location: 'fake',
    async upload() {},
    async download(filename: string, file: FileHandle, options: TransferOptions = {}) {
      const body = bytes(filename)
      await file.write(body, 0, body.length, 0)
      options.onChunk?.(body)
      during()
      return { size: body.length, sha256: undefined }
    },
  }
}

function context(directory: string, filename: string, options: { allowed?: boolean; gid?: number; storage?: Storage } = {}): StageContext {
  const job = {
    kind: 'restore',
    id: 'job',
    request: { destination: { type: 'LOCAL', filename, filenamePrefix: '' }, encryptionKey: '' },
    streamRestore: false,
    filename: '',
    filesize: 0,
    progress: undefined,
    checksum: undefined,
    checksumVerified: undefined,
  } as unknown as Job
  const storage = options.storage ?? fakeStorage((name) => (name.endsWith('.osb') ? OSB : DATA))
  return {
    job,
    directory,
    pinnedDirectory: () => directory,
    scriptDirectory: () => directory,
    allowedToDeleteFiles: options.allowed ?? false,
    requireChecksum: false,
    jobGid: options.gid,
    storage: () => storage,
    transferOptions: () => ({}),
  } as unknown as StageContext
}

const download = (ctx: StageContext) => (RESTORE_STAGES.find((s) => s.name === 'download') as (typeof RESTORE_STAGES)[number]).run(ctx)

/** A root with directory_restore/<id> in it and a file beside them, as the agent lays them out. */
function layout() {
  const root = mkdtempSync(join(tmpdir(), 'restore-download-'))
  const restoreRoot = join(root, 'restore')
  const directory = join(restoreRoot, 'job')
  mkdirSync(directory, { recursive: true })
  writeFileSync(join(root, 'beside'), 'beside')
  return { root, directory }
}

/** Every path under `root` but inside `except`, with what it is. */
function tree(root: string, except: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[])
    .map((name) => join(root, name))
    .filter((path) => path !== except && !path.startsWith(`${except}/`))
    .map((path) => `${path} ${lstatSync(path).isDirectory() ? 'dir' : lstatSync(path).size}`)
    .sort()
}

describe('restore download stage', () => {
  it('refuses ..osb, ...osb and .osb (the name without .osb is ".", ".." or empty) and writes nothing', async () => {
    for (const filename of ['..osb', '...osb', '.osb']) {
      const { root, directory } = layout()
      const before = tree(root, directory)
      await assert.rejects(download(context(directory, filename, { allowed: true })), (error: Error) => {
        assert.ok(error instanceof JobError)
        assert.match(
          error.message,
          /^the decoded file's name \(.*osb without \.osb\) is ".*", which is not a single file name the agent may write in the job directory$/,
        )
        return true
      })
      assert.deepEqual(tree(root, directory), before, filename)
      assert.deepEqual(readdirSync(directory), [], filename)
    }
  })

  it('any name: a restore writes only the name it should, directly in the job directory, and nothing else anywhere', async () => {
    // The oracle, from the contract rather than the code: a restore filename is one path
    // component; a `.osb` object is decoded into the name without `.osb`, which must be one too.
    const isFileName = (name: string) => name !== '' && name !== '.' && name !== '..' && !name.includes('/')
    const expectedName = (filename: string) => {
      if (!isFileName(filename)) return undefined
      const decoded = filename.endsWith('.osb') ? filename.slice(0, -4) : filename
      return isFileName(decoded) ? decoded : undefined
    }
    const piece = fc.constantFrom('.', '..', 'osb', '.osb', 'a', '/', 'b.sql')
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { maxLength: 5 }).map((parts) => parts.join('')),
        async (filename) => {
          const { root, directory } = layout()
          const before = tree(root, directory)
          const expected = expectedName(filename)
          const run = download(context(directory, filename))
          if (expected === undefined) {
            await assert.rejects(run, JobError)
            assert.deepEqual(readdirSync(directory), [])
          } else {
            await run
            assert.deepEqual(readdirSync(directory), [expected])
            assert.deepEqual(readFileSync(join(directory, expected)), DATA)
          }
          assert.deepEqual(tree(root, directory), before)
        },
      ),
      { numRuns: 150 },
    )
  })

  it('without allowed_to_delete_files, an entry at the decoded name (a file, a dangling symlink) is not replaced', async () => {
    for (const plant of ['file', 'dangling link'] as const) {
      const { root, directory } = layout()
      const at = join(directory, 'dump')
      if (plant === 'file') writeFileSync(at, 'mine')
      else symlinkSync(join(root, 'nowhere'), at)
      await assert.rejects(
        download(context(directory, 'dump.osb')),
        /dump already exists and allowed_to_delete_files is false, so it is not replaced/,
      )
      assert.deepEqual(readdirSync(directory), ['dump'])
      if (plant === 'file') assert.equal(readFileSync(at, 'utf8'), 'mine')
      else assert.equal(readlinkSync(at), join(root, 'nowhere'))
      assert.deepEqual(readdirSync(root).sort(), ['beside', 'restore'])
    }
  })

  it('a name taken while the download ran: kept without allowed_to_delete_files, the link replaced (not written through) with it', async () => {
    for (const allowed of [false, true]) {
      const { root, directory } = layout()
      const target = join(root, 'beside')
      const storage = fakeStorage(
        () => DATA,
        () => symlinkSync(target, join(directory, 'dump.sql')),
      )
      const run = download(context(directory, 'dump.sql', { allowed, storage }))
      if (allowed) {
        await run
        assert.ok(lstatSync(join(directory, 'dump.sql')).isFile())
        assert.deepEqual(readFileSync(join(directory, 'dump.sql')), DATA)
      } else {
        await assert.rejects(run, /dump\.sql already exists and allowed_to_delete_files is false/)
        assert.ok(lstatSync(join(directory, 'dump.sql')).isSymbolicLink())
      }
      assert.equal(readFileSync(target, 'utf8'), 'beside')
      assert.deepEqual(readdirSync(directory), ['dump.sql'], 'no temporary entry is left')
    }
  })

  it("the agent's working directory moved aside and a symlink left at its name while the download ran: nothing is written through it", async () => {
    for (const filename of ['dump.sql', 'dump.osb']) {
      const { root, directory } = layout()
      const outside = join(root, 'outside')
      mkdirSync(outside)
      const storage = fakeStorage(
        (name) => (name.endsWith('.osb') ? OSB : DATA),
        () => {
          const work = readdirSync(directory).find((n) => n.startsWith('.agent-download-'))
          assert.ok(work, 'the download is written in a directory of the agent')
          renameSync(join(directory, work), join(directory, 'moved'))
          symlinkSync(outside, join(directory, work))
        },
      )
      await download(context(directory, filename, { allowed: true, storage }))
      assert.deepEqual(readdirSync(outside), [], `${filename}: nothing was written outside`)
      assert.deepEqual(
        readFileSync(join(directory, filename === 'dump.osb' ? 'dump' : filename)),
        DATA,
        `${filename}: the restore file is in place`,
      )
      assert.deepEqual(readdirSync(join(directory, 'moved')), [], `${filename}: the temporary files were removed through the handle`)
    }
  })

  it('with allowed_to_delete_files, a directory at the name is replaced; one behind a symlink is left alone', async () => {
    const { root, directory } = layout()
    mkdirSync(join(directory, 'dump.sql', 'deep'), { recursive: true })
    mkdirSync(join(root, 'elsewhere'))
    writeFileSync(join(root, 'elsewhere', 'kept'), 'kept')
    symlinkSync(join(root, 'elsewhere'), join(directory, 'dump'))
    await download(context(directory, 'dump.sql', { allowed: true }))
    await download(context(directory, 'dump.osb', { allowed: true }))
    assert.deepEqual(readFileSync(join(directory, 'dump.sql')), DATA)
    assert.deepEqual(readFileSync(join(directory, 'dump')), DATA)
    assert.deepEqual(readdirSync(join(root, 'elsewhere')), ['kept'])
  })

  it('gives the restore file mode 0640 and job_group whatever the umask, and removes its temporary directory on a failure', async () => {
    const { directory } = layout()
    const umask = process.umask(0o077)
    try {
      await download(context(directory, 'dump.osb', { gid: 1 }))
    } finally {
      process.umask(umask)
    }
    const info = statSync(join(directory, 'dump'))
    assert.equal(info.mode & 0o7777, 0o640)
    assert.equal(info.gid, 1)
    const broken = fakeStorage(() => Buffer.from('not an osb object'))
    await assert.rejects(download(context(directory, 'other.osb', { storage: broken })))
    assert.deepEqual(readdirSync(directory), ['dump'])
  })
})
