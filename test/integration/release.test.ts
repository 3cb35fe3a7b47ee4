// The release as operators run it: tools/bundle.sh's bundle started by bin/osb-backup-agent
// (the suite otherwise runs src/ as it is). It backs up to the lab's S3 and restores from it,
// which takes the bundle through the job machinery, the script helper, the HTTP client, the
// signer and the store.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId, managerRestoreBody, s3Destination } from '../helpers/bodies.ts'
import { s3Lab, uniqueName } from '../helpers/storage.ts'

const ROOT = new URL('../../', import.meta.url).pathname

/** The release layout of tools/release.sh, without the tarball: bin/, dist/, libexec/, node/bin/node. */
function buildRelease(): string {
  const release = mkdtempSync(join(tmpdir(), 'osb-release-test-'))
  const bundled = spawnSync('bash', [join(ROOT, 'tools/bundle.sh'), join(release, 'dist')], { encoding: 'utf8' })
  assert.equal(bundled.status, 0, `tools/bundle.sh failed: ${bundled.stderr}`)
  const helper = spawnSync('bash', [join(ROOT, 'tools/build-native.sh'), '--require', join(release, 'libexec')], {
    encoding: 'utf8',
  })
  assert.equal(helper.status, 0, `tools/build-native.sh failed: ${helper.stderr}`)
  cpSync(join(ROOT, 'bin'), join(release, 'bin'), { recursive: true })
  cpSync(join(ROOT, 'package.json'), join(release, 'package.json'))
  mkdirSync(join(release, 'node/bin'), { recursive: true })
  symlinkSync(process.execPath, join(release, 'node/bin/node'))
  return release
}

describe('the release bundle', () => {
  const s3 = s3Lab()
  const bucket = uniqueName('agent-release')
  const target = s3.target(bucket)
  let release: string
  let agent: Agent

  before(async () => {
    release = buildRelease()
    await s3.createBucket(bucket)
    agent = await startAgent({
      command: [join(release, 'bin/osb-backup-agent'), 'serve'],
      scripts: {
        backup: 'head -c 3000000 /dev/urandom > "$5.dump"',
        restore: 'wc -c < "$5"; readlink /proc/$PPID/exe',
      },
    })
  })
  after(async () => {
    await agent?.stop()
    rmSync(release, { recursive: true, force: true })
  })

  it('backs up to S3 and restores from it', async () => {
    const id = managerId()
    assert.equal((await agent.request('POST', '/backup', managerBackupBody(id, s3Destination(target)))).status, 201)
    const backup = await agent.waitFor('backup', id)
    assert.equal(backup.status, 'SUCCEEDED', backup.error_message)
    assert.equal(backup.filesize.size, 3000000)

    const rid = managerId()
    assert.equal(
      (await agent.request('PUT', '/restore', managerRestoreBody(rid, s3Destination(target, { filename: backup.filename })))).status,
      201,
    )
    const restore = await agent.waitFor('restore', rid)
    assert.equal(restore.status, 'SUCCEEDED', restore.error_message)
    const [size, starter] = restore.restore_log.trim().split('\n')
    assert.equal(size?.trim(), '3000000')
    assert.equal(starter, join(release, 'libexec/script-helper'), "the release's compiled helper started the scripts")
  })
})
