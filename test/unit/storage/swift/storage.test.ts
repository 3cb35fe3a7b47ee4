// SwiftStorage against the in-memory FakeSwift, for what the real Swift does not do on request:
// a token dying mid-transfer, a wrong ETag, corrupt bytes, a 503, a download cut in half, a
// cancelled job, an agent restart after an interrupted upload.
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { truncateSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobError } from '../../../../src/errors.ts'
import type { SwiftDestination } from '../../../../src/jobs/request.ts'
import { TokenCache } from '../../../../src/storage/swift/keystone.ts'
import { SwiftStorage } from '../../../../src/storage/swift/storage.ts'
import type { StorageSettings } from '../../../../src/storage/storage.ts'
import { FakeSwift } from '../../../helpers/swift.ts'
import { downloadTo } from '../../../helpers/download.ts'

const MiB = 1024 * 1024
const KEY = 'fake-key'

describe('SwiftStorage', () => {
  let fake: FakeSwift
  let dir: string
  let tokens: TokenCache
  const settings: StorageSettings = {
    swiftRegion: undefined,
    swiftSegmentBytes: MiB,
    swiftSegmentThresholdBytes: MiB,
    storageRetries: 2,
    localStorageRoot: '',
  }

  before(async () => {
    fake = await FakeSwift.start()
    dir = await mkdtemp(join(tmpdir(), 'osb-swift-unit-'))
  })
  after(async () => {
    await fake.close()
    await rm(dir, { recursive: true, force: true })
  })
  beforeEach(() => {
    fake.containers.clear()
    fake.containers.set('backups', new Map())
    fake.log.length = 0
    tokens = new TokenCache() // a cache per test: login counts stay readable
  })
  afterEach(() => {
    fake.logins = 0
    fake.refusedBeforeBody = 0
    fake.revokeOnce = undefined
    fake.onArrival = undefined
    fake.wrongEtagFor = undefined
    fake.corruptDownloads = false
    fake.failPuts.length = 0
    fake.putDelayMs = 0
  })

  function storage(overrides: Partial<StorageSettings> = {}): SwiftStorage {
    const destination: SwiftDestination = {
      type: 'SWIFT',
      authUrl: fake.authUrl,
      domain: '',
      projectName: '',
      containerName: 'backups',
      username: 'fake:user',
      password: KEY,
    }
    return new SwiftStorage(destination, { ...settings, ...overrides }, tokens)
  }

  async function file(bytes: number): Promise<{ path: string; data: Buffer }> {
    const data = randomBytes(bytes)
    const path = join(dir, `f-${Math.random().toString(36).slice(2)}`)
    await writeFile(path, data)
    return { path, data }
  }

  it('uploads a small file as one object and a large one as an SLO, both verified on the way back', async () => {
    const small = await file(1000)
    const large = await file(3 * MiB + 5)
    const s = storage()
    await s.upload(small.path, 'small.sql')
    await s.upload(large.path, 'large.sql')
    assert.ok(fake.object('backups', 'small.sql')?.data.equals(small.data))
    assert.equal(fake.object('backups', 'large.sql')?.manifest?.length, 4)
    assert.equal(fake.names('backups_segments').length, 4)
    for (const [name, source] of [
      ['small.sql', small],
      ['large.sql', large],
    ] as const) {
      const target = join(dir, `out-${name}`)
      assert.deepEqual(await downloadTo(s, name, target), { size: source.data.length, sha256: undefined })
      assert.ok((await readFile(target)).equals(source.data))
    }
    assert.equal(fake.logins, 1, 'one login for all of it')
  })

  it('stores the SHA-256 it is given with the object (the manifest of an SLO), reports progress and every chunk', async () => {
    const s = storage()
    for (const [name, bytes] of [
      ['plain.sql', 100_000],
      ['slo.sql', 3 * MiB + 1],
    ] as const) {
      const source = await file(bytes)
      const sha256 = createHash('sha256').update(source.data).digest('hex')
      const sent: number[] = []
      await s.upload(source.path, name, { sha256, onProgress: (done) => sent.push(done) })
      assert.equal(fake.object('backups', name)?.metadata?.['x-object-meta-sha256'], sha256)
      assert.equal(sent.at(-1), bytes)
      assert.ok(
        sent.every((n, i) => i === 0 || n >= (sent[i - 1] as number)),
        'progress only grows',
      )
      const chunks: Buffer[] = []
      const received: number[] = []
      const downloaded = await downloadTo(s, name, join(dir, `out-${name}`), {
        onChunk: (c) => chunks.push(c),
        onProgress: (done) => received.push(done),
      })
      assert.deepEqual(downloaded, { size: bytes, sha256 })
      assert.ok(Buffer.concat(chunks).equals(source.data))
      assert.equal(received.at(-1), bytes)
    }
    assert.equal(
      fake.names('backups_segments').every((n) => fake.object('backups_segments', n)?.metadata?.['x-object-meta-sha256'] === undefined),
      true,
    )
  })

  it('sends the segments of an SLO while its SHA-256 is still being computed; the manifest carries it', async () => {
    const s = storage()
    const source = await file(3 * MiB)
    const sha256 = createHash('sha256').update(source.data).digest('hex')
    let computed!: (digest: string) => void
    const late = new Promise<string>((resolve) => (computed = resolve))
    let early = false
    fake.onArrival = (line) => {
      if (line.includes('?multipart-manifest=put')) early = true
    }
    const uploading = s.upload(source.path, 'late.sql', { sha256: late })
    while (fake.names('backups_segments').length < 3) await new Promise((r) => setTimeout(r, 5))
    await new Promise((r) => setTimeout(r, 20))
    fake.onArrival = undefined
    assert.equal(early, false, 'no manifest before the digest')
    computed(sha256)
    await uploading
    assert.equal(fake.object('backups', 'late.sql')?.metadata?.['x-object-meta-sha256'], sha256)
    // a single PUT carries it in its headers: it waits for it
    await s.upload((await file(10)).path, 'small.sql', { sha256: Promise.resolve('ab'.repeat(32)) })
    assert.equal(fake.object('backups', 'small.sql')?.metadata?.['x-object-meta-sha256'], 'ab'.repeat(32))
  })

  it('fails an SLO whose SHA-256 could not be computed and leaves nothing behind', async () => {
    const source = await file(3 * MiB)
    const failed = Promise.reject(new Error('EIO: the disk broke'))
    failed.catch(() => {})
    await assert.rejects(
      storage().upload(source.path, 'unhashed.sql', { sha256: failed }),
      /^JobError: upload of unhashed\.sql failed.*: EIO: the disk broke$/,
    )
    assert.deepEqual(fake.names('backups_segments'), [])
    assert.equal(fake.object('backups', 'unhashed.sql'), undefined)
  })

  it('logs in again when the token dies between two jobs', async () => {
    const s = storage()
    await s.upload((await file(10)).path, 'warm-up') // token cached
    fake.revokeTokens()
    const large = await file(3 * MiB)
    await s.upload(large.path, 'after-revoke.sql')
    assert.equal(fake.logins, 2)
    assert.ok(fake.object('backups', 'after-revoke.sql')?.data.equals(large.data))
  })

  it('a PUT that meets a dead token is refused before its body, then sent once with a new token', async () => {
    const s = storage()
    const source = await file(3 * MiB)
    fake.revokeOnce = /^PUT \/v1\/AUTH_fake\/backups_segments\/.*\/00000001$/
    await s.upload(source.path, 'slo.sql')
    // segment 2 (and any other in flight at that moment) was refused before sending a byte ...
    assert.ok(fake.refusedBeforeBody >= 1)
    assert.equal(fake.logins, 2, 'one new login, shared by the segments in flight')
    // ... and each segment's body reached Swift exactly once
    const segmentPuts = fake.log.filter((l) => l.startsWith('PUT backups_segments/'))
    assert.equal(segmentPuts.length, 3)
    assert.equal(new Set(segmentPuts).size, 3)
    assert.ok(fake.object('backups', 'slo.sql')?.data.equals(source.data))
  })

  it('deletes the segments of an SLO that a new upload of the same name replaces', async () => {
    const s = storage()
    await s.upload((await file(2 * MiB + 1)).path, 'same-minute.sql')
    const first = fake.names('backups_segments')
    assert.equal(first.length, 3)
    await s.upload((await file(3 * MiB)).path, 'same-minute.sql')
    const second = fake.names('backups_segments')
    assert.equal(second.length, 3)
    assert.ok(second.every((n) => !first.includes(n)))
    await s.upload((await file(100)).path, 'same-minute.sql') // a plain object replaces the SLO
    assert.deepEqual(fake.names('backups_segments'), [])
    assert.equal(fake.object('backups', 'same-minute.sql')?.data.length, 100)
  })

  it('deletes an object whose ETag does not match what was sent, and fails', async () => {
    const source = await file(5000)
    fake.wrongEtagFor = /^bad\.sql$/
    await assert.rejects(storage().upload(source.path, 'bad.sql'), (error: Error) => {
      assert.ok(error instanceof JobError)
      assert.match(
        error.message,
        /^upload of bad\.sql failed verification: Swift stored bad\.sql with MD5 [0-9a-f]{32} but the bytes sent have MD5 [0-9a-f]{32}; the stored copy was deleted$/,
      )
      return true
    })
    assert.equal(fake.object('backups', 'bad.sql'), undefined)
  })

  it('fails an SLO whose segment ETag is wrong and leaves no segment behind', async () => {
    const source = await file(3 * MiB)
    fake.wrongEtagFor = /\/00000001$/
    await assert.rejects(storage().upload(source.path, 'slo.sql'), /\(segment 2 of 3\) failed verification/)
    assert.deepEqual(fake.names('backups_segments'), [])
    assert.equal(fake.object('backups', 'slo.sql'), undefined)
  })

  it('retries a segment that met a 503 and counts every request', async () => {
    const source = await file(3 * MiB)
    fake.failPuts.push({ match: /\/00000002$/, status: 503 })
    let requests = 0
    const progress: number[] = []
    await storage().upload(source.path, 'retried.sql', { onRequest: () => requests++, onProgress: (done) => progress.push(done) })
    assert.ok(fake.object('backups', 'retried.sql')?.data.equals(source.data))
    // the bytes of the failed try are taken back: the count never passes the size and ends there
    assert.equal(Math.max(...progress), 3 * MiB)
    assert.equal(progress.at(-1), 3 * MiB)
    // HEAD container, HEAD object (an SLO to replace?), HEAD segments container, PUT segments
    // container, 3 segments + 1 retry, manifest
    assert.equal(requests, 9)
  })

  it('gives up after storage_retries and says what Swift answered', async () => {
    const source = await file(1000)
    for (let i = 0; i < 3; i++) fake.failPuts.push({ match: /^busy\.sql$/, status: 503 })
    await assert.rejects(
      storage().upload(source.path, 'busy.sql'),
      /^JobError: upload of busy\.sql failed: Swift account http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_fake answered 503 Service Unavailable$/,
    )
  })

  it('fails a download whose bytes do not match the ETag, plain or SLO', async () => {
    const s = storage()
    await s.upload((await file(1000)).path, 'plain.sql')
    await s.upload((await file(2 * MiB + 1)).path, 'slo.sql')
    fake.corruptDownloads = true
    await assert.rejects(
      downloadTo(s, 'plain.sql', join(dir, 'x')),
      /^JobError: download of plain\.sql failed verification: the bytes received have MD5 [0-9a-f]{32}, Swift's ETag is [0-9a-f]{32}$/,
    )
    await assert.rejects(
      downloadTo(s, 'slo.sql', join(dir, 'y')),
      /download of slo\.sql failed verification: the segments received give ETag/,
    )
  })

  it('leaves the check of an object with a stored SHA-256 to the caller: no MD5s, no manifest GET', async () => {
    const s = storage()
    const source = await file(2 * MiB + 1)
    const sha256 = createHash('sha256').update(source.data).digest('hex')
    await s.upload(source.path, 'slo.sql', { sha256 })
    fake.corruptDownloads = true
    fake.log.length = 0
    const chunks: Buffer[] = []
    assert.deepEqual(await downloadTo(s, 'slo.sql', join(dir, 'z'), { onChunk: (c) => chunks.push(c) }), {
      size: source.data.length,
      sha256,
    })
    assert.notEqual(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), sha256, 'what the caller hashes shows the corruption')
    assert.deepEqual(fake.log, ['GET backups/slo.sql'])
  })

  it('resumes a download cut in half with a ranged GET of the same object', async () => {
    const s = storage()
    const source = await file(2 * MiB + 3)
    await s.upload(source.path, 'resume.sql')
    fake.cutNextDownload = true
    fake.log.length = 0
    const target = join(dir, 'resumed')
    assert.deepEqual(await downloadTo(s, 'resume.sql', target), { size: source.data.length, sha256: undefined })
    assert.ok((await readFile(target)).equals(source.data))
    assert.equal(fake.log.filter((l) => l === 'GET backups/resume.sql').length, 2)
  })

  it('cancels an SLO upload and deletes what it wrote', async () => {
    const source = await file(4 * MiB)
    fake.putDelayMs = 100
    const abort = new AbortController()
    setTimeout(() => abort.abort('cancelled by the operator'), 150)
    await assert.rejects(storage().upload(source.path, 'cancelled.sql', { signal: abort.signal }), /^JobError: cancelled by the operator$/)
    assert.deepEqual(fake.names('backups_segments'), [])
    assert.equal(fake.object('backups', 'cancelled.sql'), undefined)
  })

  it('a cancel that arrives during the manifest PUT still leaves nothing behind', async () => {
    const source = await file(3 * MiB)
    const abort = new AbortController()
    fake.onArrival = (line) => {
      if (line.startsWith('PUT /v1/AUTH_fake/backups/late.sql?multipart-manifest=put')) abort.abort('cancelled late')
    }
    await assert.rejects(storage().upload(source.path, 'late.sql', { signal: abort.signal }), /^JobError: cancelled late$/)
    assert.ok(fake.log.includes('PUT backups/late.sql?multipart-manifest=put'), 'the manifest was stored before the cleanup')
    assert.equal(fake.object('backups', 'late.sql'), undefined)
    assert.deepEqual(fake.names('backups_segments'), [])
  })

  it('abandon() removes the segments of an interrupted upload and keeps those of the finished object', async () => {
    const s = storage()
    await s.upload((await file(2 * MiB)).path, 'db.sql')
    const kept = fake.names('backups_segments')
    // what an agent killed mid-upload leaves: segments of a newer upload of the same name, no manifest
    const segments = fake.containers.get('backups_segments') as Map<string, { data: Buffer; etag: string }>
    segments.set('db.sql/slo/1999999999.000000/2097152/1048576/00000000', { data: Buffer.from('x'), etag: 'e' })
    segments.set('db.sql/slo/1999999999.000000/2097152/1048576/00000001', { data: Buffer.from('y'), etag: 'e' })
    segments.set('other.sql/slo/1999999999.000000/2097152/1048576/00000000', { data: Buffer.from('z'), etag: 'e' })
    await s.abandon('db.sql')
    assert.deepEqual(fake.names('backups_segments'), [...kept, 'other.sql/slo/1999999999.000000/2097152/1048576/00000000'].sort())
    // no object at all: every segment of that name goes
    segments.set('gone.sql/slo/1/1/1/00000000', { data: Buffer.from('x'), etag: 'e' })
    await s.abandon('gone.sql')
    assert.ok(!fake.names('backups_segments').some((n) => n.startsWith('gone.sql/')))
    await storage().abandon('never-uploaded.sql')
  })

  it('fails, without retrying, when the file shrinks while it is uploaded', async () => {
    const source = await file(100_000)
    fake.onArrival = (line) => {
      if (line.startsWith('HEAD ')) truncateSync(source.path, 10) // after the size was taken
    }
    let requests = 0
    await assert.rejects(
      storage().upload(source.path, 'shrinking.sql', { onRequest: () => requests++ }),
      new RegExp(`^JobError: ${source.path} changed while it was uploaded: read 10 of 100000 bytes`),
    )
    assert.equal(requests, 3, 'HEAD container, HEAD object, one PUT')
    assert.equal(fake.object('backups', 'shrinking.sql'), undefined)
  })

  it('says which is missing: the container or the object', async () => {
    const s = storage()
    await assert.rejects(
      downloadTo(s, 'nope.sql', join(dir, 'n')),
      /object "nope\.sql" does not exist in container "backups" of Swift account http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_fake; check the filename/,
    )
    fake.containers.delete('backups')
    await assert.rejects(downloadTo(s, 'nope.sql', join(dir, 'n')), /container "backups" does not exist in Swift account/)
    await assert.rejects(s.upload((await file(10)).path, 'x.sql'), /^JobError: upload of x\.sql failed: container "backups" does not exist/)
  })
})
