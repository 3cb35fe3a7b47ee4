// Nothing the agent writes follows a symlink (issue 14, item 5), against real agents and LOCAL.
//
// The names a restore writes are taken from observed runs (fs.watch on directory_restore while a
// restore of a file and of a streamed `.osb` object runs, plus a streaming restore), not from the
// code. A symlink is then planted at each of them by the pre-restore-lock script: after the agent
// prepared the job directory, before it downloads, as a script or a process of the database user
// could. It points at a file outside (known content and mode), at a directory outside, and at a
// path outside that does not exist. Each run must leave all three as they were, and either
// succeed with the right restore or fail saying why.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { watch } from 'node:fs'
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody } from '../helpers/bodies.ts'

const SIZE = 2_000_000
const ROW = 'row of orders\n'
const content = Buffer.from(ROW.repeat(Math.ceil(SIZE / ROW.length))).subarray(0, SIZE)
const expectedHash = createHash('sha256').update(content).digest('hex')
const destination = (extra: Record<string, unknown> = {}) => ({ type: 'LOCAL', filenamePrefix: 'sym/', ...extra })

// The job directory itself replaced while the job runs: moved aside (or removed) and a symlink to
// somewhere outside left under its name, as a lock script or a process of the database user could.
const SWAP_JOB_DIRECTORY = [
  'if [ -n "$swap" ]; then d=$PWD; cd / || exit 1',
  '  if [ "$swap" = move ]; then mv -- "$d" "$d.moved"; else rm -rf -- "$d"; fi',
  '  ln -s -- "$swap_target" "$d"',
  'fi',
].join('\n')

const scripts = {
  // the same bytes through the file contract or through BACKUP_STREAM (a streamed .osb object)
  backup: [
    `rows() { yes '${ROW.trim()}' | head -c ${SIZE}; }`,
    'if [ -n "$swap" ]; then exit 0; fi',
    'if [ -n "$hardlink" ]; then ln -- "$hardlink" "$5.sql"; exit 0; fi',
    'if [ "$stream" = 1 ]; then rows > "$BACKUP_STREAM"; elif [ -n "$dot_name" ]; then rows > "$dot_name"; else rows > "$5.sql"; fi',
  ].join('\n'),
  // plants what a test asks for in the job directory (the script's working directory)
  'pre-restore-lock': [
    'if [ -n "$plant" ]; then mkdir -p -- "$(dirname -- "$plant")" && ln -s -- "$plant_target" "$plant"; fi',
    'if [ -n "$plant_file" ]; then printf mine > "$plant_file"; fi',
    SWAP_JOB_DIRECTORY,
  ].join('\n'),
  'pre-backup-lock': ['if [ -n "$plant" ]; then ln -s -- "$plant_target" "$plant"; fi', SWAP_JOB_DIRECTORY].join('\n'),
  restore: 'sha256sum "$5" | cut -c1-64',
}

interface Outside {
  file: string
  directory: string
  missing: string
}

/** What lies outside the job directories, to compare before and after each run. */
async function snapshot(outside: Outside): Promise<string> {
  const file = await stat(outside.file)
  const directory = await stat(outside.directory)
  const inside = await readFile(join(outside.directory, 'inside'), 'utf8')
  const missing = await lstat(outside.missing).then(
    () => 'exists',
    () => 'missing',
  )
  return JSON.stringify({
    file: [
      createHash('sha256')
        .update(await readFile(outside.file))
        .digest('hex'),
      file.size,
      file.mode & 0o7777,
      file.uid,
      file.gid,
    ],
    directory: [(await readdir(outside.directory)).sort(), directory.mode & 0o7777, inside],
    missing,
  })
}

describe('nothing a restore writes follows a symlink (LOCAL)', () => {
  let base: string
  let outside: Outside
  let strict: Agent
  let permissive: Agent
  let streaming: Agent
  let fileObject: string
  let osbObject: string

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'osb-symlinks-'))
    outside = { file: join(base, 'precious.txt'), directory: join(base, 'precious-dir'), missing: join(base, 'never-created') }
    await writeFile(outside.file, 'precious\n')
    await chmod(outside.file, 0o604)
    await mkdir(outside.directory)
    await writeFile(join(outside.directory, 'inside'), 'kept\n')
    await chmod(outside.directory, 0o705)
    const env = { local_storage_root: join(base, 'objects') }
    strict = await startAgent({ env, scripts })
    permissive = await startAgent({ env: { ...env, allowed_to_delete_files: 'true' }, scripts })
    streaming = await startAgent({ env, scripts: { ...scripts, restore: 'sha256sum < "$RESTORE_STREAM" | cut -c1-64' } })
    fileObject = await backup({})
    osbObject = await backup({ stream: '1' })
    assert.match(osbObject, /\.osb$/)
  })
  after(async () => {
    for (const agent of [strict, permissive, streaming]) await agent?.stop()
    await rm(base, { recursive: true, force: true })
  })

  async function backup(parameters: Record<string, unknown>): Promise<string> {
    const id = managerId()
    assert.equal((await strict.request('POST', '/backup', managerBackupBody(id, destination(), { parameters }))).status, 201)
    const done = await strict.waitFor('backup', id)
    assert.equal(done.status, 'SUCCEEDED', done.error_message)
    return done.filename
  }

  async function restore(agent: Agent, filename: string, parameters: Record<string, unknown> = {}, id = managerId()) {
    const res = await agent.request('PUT', '/restore', managerRestoreBody(id, destination({ filename }), { parameters }))
    assert.equal(res.status, 201, res.text)
    return { id, done: await agent.waitFor('restore', id) }
  }

  /** Every name that appeared in the job directory while a restore ran, relative to it. */
  async function observedNames(agent: Agent, filename: string): Promise<{ names: string[]; final: string }> {
    const id = managerId()
    const seen = new Set<string>()
    await mkdir(agent.restoreDir, { recursive: true })
    const watcher = watch(agent.restoreDir, { recursive: true }, (_event, name) => {
      if (name) seen.add(String(name))
    })
    try {
      const { done } = await restore(agent, filename, {}, id)
      assert.equal(done.status, 'SUCCEEDED', done.error_message)
      assert.equal(done.restore_log.trim(), expectedHash)
      await new Promise((r) => setTimeout(r, 200)) // the last events
    } finally {
      watcher.close()
    }
    const final = (await readdir(join(agent.restoreDir, id))).filter((n) => !n.startsWith('.'))[0] ?? ''
    if (final !== '') assert.ok(seen.has(join(id, final)), `the watcher saw the restore file being written: ${[...seen].join(', ')}`)
    // what is left at the end counts too (a watcher can miss a name created and gone too fast)
    for (const entry of await readdir(join(agent.restoreDir, id), { recursive: true })) seen.add(join(id, entry))
    const names = [...seen].filter((n) => n.startsWith(`${id}/`)).map((n) => n.slice(id.length + 1))
    return { names: [...new Set(names)].sort(), final }
  }

  /** Plants a symlink at each name, to each kind of target, and checks what a restore did. */
  async function plantEverywhere(agent: Agent, filename: string, names: string[], final: string, mayReplace: boolean) {
    for (const name of names) {
      for (const [kind, target] of Object.entries(outside)) {
        const before = await snapshot(outside)
        const { id, done } = await restore(agent, filename, { plant: name, plant_target: target })
        const what = `${filename}: a symlink at ${name} to the ${kind} outside`
        assert.equal(await snapshot(outside), before, `${what} changed what it points to`)
        if (name === final && !mayReplace) {
          assert.equal(done.status, 'FAILED', what)
          assert.match(
            done.error_message,
            new RegExp(`${final.replaceAll('.', '\\.')} already exists and allowed_to_delete_files is false, so it is not replaced`),
            what,
          )
          assert.ok((await lstat(join(agent.restoreDir, id, name))).isSymbolicLink(), `${what}: the link was left alone`)
        } else {
          assert.equal(done.status, 'SUCCEEDED', `${what}: ${done.error_message}`)
          assert.equal(done.restore_log.trim(), expectedHash, what)
          if (name === final)
            assert.ok((await lstat(join(agent.restoreDir, id, name))).isFile(), `${what}: the link was replaced by the file`)
        }
      }
    }
  }

  it('a restore of a file: a symlink at any name it wrote changes nothing outside', async () => {
    const { names, final } = await observedNames(strict, fileObject)
    assert.equal(final, fileObject)
    assert.ok(names.includes(final), `observed: ${names.join(', ')}`)
    await plantEverywhere(strict, fileObject, names, final, false)
    await plantEverywhere(permissive, fileObject, names, final, true)
  })

  it('a restore of a streamed .osb object through a file: a symlink at any name it wrote changes nothing outside', async () => {
    const { names, final } = await observedNames(strict, osbObject)
    assert.equal(final, osbObject.slice(0, -'.osb'.length))
    assert.ok(names.includes(final), `observed: ${names.join(', ')}`)
    await plantEverywhere(strict, osbObject, names, final, false)
    await plantEverywhere(permissive, osbObject, names, final, true)
  })

  it('a restore through RESTORE_STREAM: a symlink at any name it wrote changes nothing outside', async () => {
    const { names } = await observedNames(streaming, osbObject)
    assert.ok(names.length > 0, 'the streaming restore wrote its pipe in the job directory')
    await plantEverywhere(streaming, osbObject, names, '', false)
  })

  it('a decoded .osb restore does not replace a file of the same name without allowed_to_delete_files', async () => {
    const decoded = osbObject.slice(0, -'.osb'.length)
    const { id, done } = await restore(strict, osbObject, { plant_file: decoded })
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /already exists and allowed_to_delete_files is false, so it is not replaced/)
    assert.equal(await readFile(join(strict.restoreDir, id, decoded), 'utf8'), 'mine')
    assert.equal(done.restore_log, '')
    const replaced = await restore(permissive, osbObject, { plant_file: decoded })
    assert.equal(replaced.done.status, 'SUCCEEDED', replaced.done.error_message)
    assert.equal(replaced.done.restore_log.trim(), expectedHash)
  })

  it('an existing restore directory is emptied, without following its links, only with allowed_to_delete_files', async () => {
    for (const agent of [strict, permissive]) {
      const id = managerId()
      const directory = join(agent.restoreDir, id)
      await mkdir(directory, { recursive: true })
      await writeFile(join(directory, 'left-over'), 'old')
      await symlink(outside.directory, join(directory, fileObject))
      await symlink(outside.file, join(directory, '.restore.stream'))
      const before = await snapshot(outside)
      const { done } = await restore(agent, fileObject, {}, id)
      assert.equal(await snapshot(outside), before)
      if (agent === strict) {
        assert.equal(done.status, 'FAILED')
        assert.match(
          done.error_message,
          new RegExp(`cannot prepare the job directory ${directory}: it already exists and allowed_to_delete_files is false`),
        )
        assert.deepEqual((await readdir(directory)).sort(), ['.restore.stream', fileObject, 'left-over'].sort())
        assert.deepEqual(await strict.stagesRun(id), [], 'no stage ran')
      } else {
        assert.equal(done.status, 'SUCCEEDED', done.error_message)
        assert.equal(done.restore_log.trim(), expectedHash)
        assert.deepEqual(await readdir(directory), [fileObject])
        assert.ok((await lstat(join(directory, fileObject))).isFile())
      }
    }
  })

  it('LOCAL refuses to restore its own metadata and to upload a dot-name', async () => {
    const metadata = join(base, 'objects', 'sym', `.${fileObject}.meta.json`)
    const stored = await readFile(metadata, 'utf8')
    const rid = managerId()
    const res = await strict.request('PUT', '/restore', managerRestoreBody(rid, destination({ filename: `.${fileObject}.meta.json` })))
    if (res.status === 201) {
      const done = await strict.waitFor('restore', rid)
      assert.equal(done.status, 'FAILED')
      assert.match(done.error_message, /reserved for the agent's own files/)
    } else {
      assert.equal(res.status, 400, res.text)
    }
    const id = managerId()
    await strict.request('POST', '/backup', managerBackupBody(id, destination(), { parameters: { dot_name: '.hidden.sql' } }))
    const done = await strict.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(
      done.error_message,
      /"sym\/\.hidden\.sql" has a part that starts with "\.": in LOCAL storage such names are reserved for the agent's own files/,
    )
    assert.equal(await readFile(metadata, 'utf8'), stored)
    assert.deepEqual(
      (await readdir(join(base, 'objects', 'sym'))).filter((n) => n.includes('hidden')),
      [],
    )
  })

  it('the job directory replaced by a symlink during the lock script: the agent neither reads nor writes through it', async () => {
    const objects = async () => (await readdir(join(base, 'objects', 'sym'))).sort()
    for (const swap of ['move', 'remove']) {
      for (const [kind, target] of Object.entries(outside)) {
        const what = `${swap}, a symlink to the ${kind} outside`
        const before = await snapshot(outside)
        const stored = await objects()
        const bid = managerId()
        await strict.request(
          'POST',
          '/backup',
          managerBackupBody(bid, destination(), { parameters: { swap, swap_target: target, job: bid } }),
        )
        const backup = await strict.waitFor('backup', bid)
        assert.equal(backup.status, 'FAILED', what)
        assert.match(
          backup.error_message,
          /the job directory .* was replaced or removed while the job ran .*the agent reads and writes only the directory it prepared/,
          what,
        )
        assert.deepEqual(await objects(), stored, `${what}: nothing was uploaded (the file outside is not the backup)`)
        assert.equal((await strict.stagesRun(bid)).at(-1), 'post-backup-unlock', `${what}: unlock ran`)
        for (const [agent, filename] of [
          [strict, fileObject],
          [permissive, osbObject],
          [streaming, osbObject],
        ] as const) {
          const rid = managerId()
          const { id, done } = await restore(agent, filename, { swap, swap_target: target, job: rid }, rid)
          assert.equal(done.status, 'FAILED', what)
          assert.match(done.error_message, /the job directory .* was replaced or removed while the job ran/, what)
          assert.equal(done.restore_log, '', `${what}: the restore script did not run`)
          assert.equal((await agent.stagesRun(id)).at(-1), 'post-restore-unlock', `${what}: unlock ran`)
        }
        assert.equal(await snapshot(outside), before, what)
      }
    }
  })

  it('a backup file with a second hard link (to a file outside, say) is not uploaded', async () => {
    const stored = await readdir(join(base, 'objects', 'sym'))
    const id = managerId()
    await strict.request('POST', '/backup', managerBackupBody(id, destination(), { parameters: { hardlink: outside.file } }))
    const done = await strict.waitFor('backup', id)
    assert.equal(done.status, 'FAILED')
    assert.match(done.error_message, /the backup file .*\.sql has 2 hard links, so it may be a file outside .*; it is not uploaded/)
    assert.deepEqual(await readdir(join(base, 'objects', 'sym')), stored)
  })

  it('a backup: a symlink at any name it wrote in its job directory changes nothing outside', async () => {
    const seen = new Set<string>()
    await mkdir(strict.backupDir, { recursive: true })
    const watcher = watch(strict.backupDir, { recursive: true }, (_event, name) => {
      if (name) seen.add(String(name))
    })
    const id = managerId()
    try {
      await strict.request('POST', '/backup', managerBackupBody(id, destination(), { parameters: { stream: '1' } }))
      assert.equal((await strict.waitFor('backup', id)).status, 'SUCCEEDED')
      await new Promise((r) => setTimeout(r, 200))
    } finally {
      watcher.close()
    }
    const names = [...seen].filter((n) => n.startsWith(`${id}/`)).map((n) => n.slice(id.length + 1))
    assert.ok(names.length > 0, 'the streamed backup wrote its pipe in the job directory')
    for (const name of names) {
      for (const target of Object.values(outside)) {
        const before = await snapshot(outside)
        const bid = managerId()
        await strict.request(
          'POST',
          '/backup',
          managerBackupBody(bid, destination(), { parameters: { stream: '1', plant: name, plant_target: target } }),
        )
        const done = await strict.waitFor('backup', bid)
        assert.equal(await snapshot(outside), before, `a symlink at ${name} to ${target}`)
        assert.equal(done.status, 'SUCCEEDED', done.error_message)
      }
    }
  })
})
