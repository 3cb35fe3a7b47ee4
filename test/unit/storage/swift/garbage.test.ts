// The Swift clean-up pass's bounds and its caution, against a scripted client: listing pages
// counted, the deadline kept, young and unreadable entries kept, an object Swift would not
// confirm missing keeps its segments.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import type { SwiftCall, SwiftClient } from '../../../../src/storage/swift/client.ts'
import { collectSwiftGarbage } from '../../../../src/storage/swift/garbage.ts'
import type { HttpResponse } from '../../../../src/storage/http/client.ts'

const OLD = '2020-01-01T00:00:00.000000'
const segment = (object: string, i: number) => `${object}/slo/1700000000.123456/100/10/${String(i).padStart(8, '0')}`

function fakeClient(listed: { name: string; last_modified: string }[], headStatus = 404) {
  const calls: string[] = []
  const answer = (status: number, text = '') =>
    ({ status, headers: {}, body: Readable.from(text ? [Buffer.from(text)] : []) }) as unknown as HttpResponse
  const client = {
    async request(call: SwiftCall): Promise<HttpResponse> {
      calls.push(`${call.method} ${call.container}${call.object ? `/${call.object}` : ''}`)
      if (call.method === 'HEAD') return answer(headStatus)
      if (call.method === 'DELETE') return answer(204)
      const query = new URLSearchParams(call.query)
      const page = listed.filter((e) => e.name > (query.get('marker') ?? '')).slice(0, Number(query.get('limit')))
      return answer(200, JSON.stringify(page.map((e) => ({ ...e, bytes: 10 }))))
    },
  }
  const target = {
    client: client as unknown as SwiftClient,
    container: 'backups',
    pageSize: 3,
    context: (what: string, container: string) => ({ what, container, username: 'u', storageUrl: 'http://swift' }),
  }
  return { calls, target }
}

const far = () => Date.now() + 60_000

describe('collectSwiftGarbage', () => {
  it('lists at most maxPages pages and deletes the old orphans it saw', async () => {
    const listed = Array.from({ length: 10 }, (_, i) => ({ name: segment('gone.bin', i), last_modified: OLD }))
    const { calls, target } = fakeClient(listed)
    const result = await collectSwiftGarbage(target, { graceMs: 0, maxPages: 2, deadline: far() })
    assert.equal(calls.filter((c) => c.startsWith('GET')).length, 2)
    assert.deepEqual(result, { objects: 6, bytes: 60, problems: [] })
    assert.equal(calls.filter((c) => c.startsWith('HEAD')).length, 1, 'one HEAD per object')
  })

  it('stops at the deadline and says so', async () => {
    const { calls, target } = fakeClient([{ name: segment('gone.bin', 0), last_modified: OLD }])
    const result = await collectSwiftGarbage(target, { graceMs: 0, maxPages: 10, deadline: Date.now() - 1 })
    assert.deepEqual(calls, [])
    assert.equal(result.objects, 0)
    assert.match(result.problems.join(), /stopped at its time limit/)
  })

  it('keeps segments younger than the grace, with an unreadable date, or named otherwise', async () => {
    const young = new Date().toISOString().replace('Z', '')
    const { calls, target } = fakeClient([
      { name: segment('a.bin', 0), last_modified: young },
      { name: segment('b.bin', 0), last_modified: 'yesterday' },
      { name: 'c.bin/slo/whenever/00000000', last_modified: OLD },
    ])
    const result = await collectSwiftGarbage(target, { graceMs: 3_600_000, maxPages: 10, deadline: far() })
    assert.deepEqual(result, { objects: 0, bytes: 0, problems: [] })
    assert.deepEqual(
      calls.filter((c) => !c.startsWith('GET')),
      [],
    )
  })

  it('deletes a young complete upload whose manifest is gone; keeps a young incomplete one, a stream, one on two pages, one uploading now', async () => {
    const young = new Date().toISOString().replace('Z', '')
    const upload = (object: string, indices: number[], stamp = '1700000000.123456') =>
      indices.map((i) => ({ name: `${object}/slo/${stamp}/25/10/${String(i).padStart(8, '0')}`, last_modified: young }))
    const listed = [
      ...upload('deleted.bin', [0, 1, 2]), // 25 bytes in segments of 10: three, all there
      ...upload('in-progress.bin', [0, 1]), // the third not yet written: an upload going on
      ...upload('uploading-now.bin', [0, 1, 2]), // complete, its manifest being written by this agent
      { name: 'stream.osb/slo/stream-1700000000000/00000000', last_modified: young }, // a stream says no count
    ].sort((a, b) => (a.name < b.name ? -1 : 1))
    const { calls, target } = fakeClient(listed)
    target.pageSize = 100
    const result = await collectSwiftGarbage(target, {
      graceMs: 3_600_000,
      maxPages: 10,
      deadline: far(),
      uploadingNow: (object) => object === 'uploading-now.bin',
    })
    assert.deepEqual(result, { objects: 3, bytes: 30, problems: [] })
    assert.deepEqual(
      calls.filter((c) => c.startsWith('DELETE')),
      [0, 1, 2].map((i) => `DELETE backups_segments/deleted.bin/slo/1700000000.123456/25/10/${String(i).padStart(8, '0')}`),
    )
    // the same complete upload listed across two pages is not known complete on either: kept
    const split = fakeClient(upload('deleted.bin', [0, 1, 2]))
    split.target.pageSize = 2
    assert.deepEqual(await collectSwiftGarbage(split.target, { graceMs: 3_600_000, maxPages: 10, deadline: far() }), {
      objects: 0,
      bytes: 0,
      problems: [],
    })
  })

  it('keeps the segments of an object Swift did not confirm missing, and reports it', async () => {
    const { calls, target } = fakeClient([{ name: segment('d.bin', 0), last_modified: OLD }], 500)
    const result = await collectSwiftGarbage(target, { graceMs: 0, maxPages: 10, deadline: far() })
    assert.equal(result.objects, 0)
    assert.equal(calls.filter((c) => c.startsWith('DELETE')).length, 0)
    assert.match(result.problems.join(), /checking object "d\.bin".*500.*its segments are kept/)
  })
})
