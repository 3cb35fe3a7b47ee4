// Storage hygiene against the real Swift of test/servers/storage-up.sh (issue 17): a Static Large
// Object whose manifest the manager deleted with a plain DELETE leaves its segments behind; the
// next successful backup reclaims them, and nothing else: not another object's segments, not a
// younger upload's, not what the agent did not write. A pass that fails leaves the backup alone.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type net from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAgent, type Agent } from '../helpers/agent.ts'
import { managerBackupBody, managerId } from '../helpers/bodies.ts'
import { uniqueName } from '../helpers/storage.ts'
import { swiftLab, type SwiftAccount } from '../helpers/swift.ts'

const MiB = 1024 * 1024
/** Backups in one minute share a generated name: `tag` tells them apart. */
const SCRIPTS = { backup: 'cp "$source" "$5-$tag.bin"' }
const SMALL_SEGMENTS = { swift_segment_bytes: String(5 * MiB), swift_segment_threshold_bytes: String(5 * MiB) }

describe('Swift storage hygiene', () => {
  const lab = swiftLab()
  let account: SwiftAccount
  let work: string
  const agents: Agent[] = []
  const cleanups: (() => Promise<unknown>)[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'osb-swift-gc-test-'))
    account = await lab.account('v1')
  })

  after(async () => {
    for (const agent of agents) await agent.stop()
    for (const cleanup of cleanups) await cleanup().catch(() => undefined)
    await rm(work, { recursive: true, force: true })
  })

  async function agentWithGrace(hours: number): Promise<Agent> {
    const agent = await startAgent({ env: { ...SMALL_SEGMENTS, storage_gc_grace_hours: String(hours) }, scripts: SCRIPTS })
    agents.push(agent)
    return agent
  }

  async function container(): Promise<string> {
    const name = uniqueName('osb-gc')
    await account.createContainer(name)
    cleanups.push(
      () => account.removeContainer(name),
      () => account.removeContainer(`${name}_segments`),
    )
    return name
  }

  async function backup(agent: Agent, destination: Record<string, unknown>, bytes: number): Promise<any> {
    const source = join(work, `source-${managerId()}`)
    await writeFile(source, randomBytes(bytes))
    const id = managerId()
    const res = await agent.request('POST', '/backup', managerBackupBody(id, destination, { parameters: { source, tag: id } }))
    assert.equal(res.status, 201, res.text)
    const body = await agent.waitFor('backup', id)
    assert.equal(body.status, 'SUCCEEDED', body.error_message)
    return body
  }

  const segmentsOf = (c: string, filename: string) => account.list(`${c}_segments`, `${filename}/slo/`)

  it('reclaims the segments of a manifest deleted with a plain DELETE, and keeps another object’s and foreign ones', async () => {
    const agent = await agentWithGrace(0)
    const c = await container()
    const destination = lab.destination('v1', c)
    const deleted = (await backup(agent, destination, 23 * MiB)).filename
    const kept = (await backup(agent, destination, 12 * MiB)).filename
    assert.equal((await segmentsOf(c, deleted)).length, 5)
    await account.delete(c, deleted) // the manager's retention: the manifest only
    assert.equal((await segmentsOf(c, deleted)).length, 5, 'a plain DELETE leaves the segments')
    // not named the way the agent names segments: never the agent's to delete
    await account.put(`${c}_segments`, 'other-tool/segment-1', 'not ours')
    await account.put(`${c}_segments`, `${deleted}/slo/not-a-stamp/00000000`, 'not ours either')

    const next = await backup(agent, destination, 1000)
    assert.deepEqual(next.storage_reclaimed, { objects: 5, bytes: 23 * MiB })
    assert.match(next.storage_gc_log, new RegExp(`reclaimed 5 objects, ${23 * MiB} bytes`))
    assert.doesNotMatch(next.storage_gc_log, /problems/)
    assert.deepEqual(await segmentsOf(c, deleted), [`${deleted}/slo/not-a-stamp/00000000`])
    assert.equal((await segmentsOf(c, kept)).length, 3, 'the segments of an existing object stay')
    assert.ok((await account.list(`${c}_segments`)).includes('other-tool/segment-1'))
    assert.equal((await account.head(c, kept)).status, 200)

    const metrics = (await agent.request('GET', '/metrics')).text
    assert.match(metrics, /osb_backup_agent_storage_reclaimed_objects_total\{backend="swift"\} 5\b/)
    assert.match(metrics, new RegExp(`osb_backup_agent_storage_reclaimed_bytes_total\\{backend="swift"\\} ${23 * MiB}\\b`))
  })

  it('with the default grace: reclaims a complete upload whose manifest is gone at once, keeps an upload in progress', async () => {
    const agent = await agentWithGrace(24)
    const c = await container()
    const destination = lab.destination('v1', c)
    const deleted = (await backup(agent, destination, 12 * MiB)).filename
    await account.delete(c, deleted)
    // a concurrent upload of another agent: two of its three segments written, no manifest yet
    const inProgress = 'concurrent.bin/slo/1765000000.123456/15728640/5242880/'
    await account.put(`${c}_segments`, `${inProgress}00000000`, randomBytes(1000))
    await account.put(`${c}_segments`, `${inProgress}00000001`, randomBytes(1000))
    // and one of a file upload that finished but whose object is gone, younger than the grace: the
    // names say it is complete (ceil(2000 / 1000) = 2 segments)
    const finished = 'finished.bin/slo/1765000000.123456/2000/1000/'
    await account.put(`${c}_segments`, `${finished}00000000`, randomBytes(1000))
    await account.put(`${c}_segments`, `${finished}00000001`, randomBytes(1000))

    const next = await backup(agent, destination, 1000)
    assert.deepEqual(next.storage_reclaimed, { objects: 5, bytes: 12 * MiB + 2000 })
    assert.deepEqual(await segmentsOf(c, deleted), [])
    assert.equal((await account.list(`${c}_segments`, inProgress)).length, 2, 'the upload in progress is kept')
    assert.deepEqual(await account.list(`${c}_segments`, 'finished.bin/'), [])
  })

  it('keeps orphaned segments of an incomplete upload younger than the grace: an upload in progress has no manifest yet', async () => {
    const agent = await agentWithGrace(1)
    const c = await container()
    const destination = lab.destination('v1', c)
    const inProgress = 'concurrent.bin/slo/1765000000.123456/10485760/5242880/'
    await account.createContainer(`${c}_segments`)
    await account.put(`${c}_segments`, `${inProgress}00000001`, randomBytes(1000))
    const next = await backup(agent, destination, 1000)
    assert.deepEqual(next.storage_reclaimed, { objects: 0, bytes: 0 })
    assert.equal((await account.list(`${c}_segments`, inProgress)).length, 1)
  })

  it('leaves the backup SUCCEEDED when the pass fails, with the problem in storage_gc_log and the metrics', async () => {
    const agent = await agentWithGrace(0)
    const c = await container()
    const proxy = await refusingProxy(Number(new URL(lab.env.SWIFT_V1_AUTH_URL as string).port), `/${c}_segments`)
    cleanups.push(() => proxy.close())
    const destination = lab.destination('v1', c, { authUrl: `http://127.0.0.1:${proxy.port}/auth/v1.0` })
    const deleted = (await backup(agent, destination, 12 * MiB)).filename
    await account.delete(c, deleted)

    const next = await backup(agent, destination, 1000)
    assert.equal(next.status, 'SUCCEEDED')
    assert.equal(next.error_message, undefined)
    assert.deepEqual(next.storage_reclaimed, { objects: 0, bytes: 0 })
    assert.match(
      next.storage_gc_log,
      /problems \(the backup is not affected\): storage clean-up of container ".*_segments" failed: user ".*" may not do this/,
    )
    assert.ok(proxy.refused() > 0)
    assert.equal((await segmentsOf(c, deleted)).length, 3)
    const metrics = (await agent.request('GET', '/metrics')).text
    assert.match(metrics, /osb_backup_agent_storage_gc_failures_total\{backend="swift"\} [1-9]/)
  })
})

/**
 * An HTTP proxy in front of the lab's tempauth Swift (which names the storage URL after the Host
 * the client used, so every request comes through here) that answers 403 to listings of one
 * container: credentials that may write there but not list.
 */
async function refusingProxy(
  targetPort: number,
  container: string,
): Promise<{ port: number; refused: () => number; close: () => Promise<void> }> {
  let refused = 0
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    const [path = ''] = (req.url ?? '').split('?')
    if (req.method === 'GET' && path.endsWith(container)) {
      refused++
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden')
      return
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    refused: () => refused,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
