import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { MAX_PARAM_LENGTH, Router, type Found } from '../../../src/http/router.ts'
import type { Route } from '../../../src/http/route.ts'
import { ROUTES } from '../../../src/http/routes.ts'

const router = new Router(ROUTES)

function route(found: Found): { route: Route; params: Record<string, string>; query: string } {
  assert.equal(found.kind, 'route', JSON.stringify(found))
  if (found.kind !== 'route') throw new Error('unreachable')
  return found
}

const allowOf = (found: Found) => (found.kind === 'method not allowed' ? found.allow.join(', ') : found.kind)

describe('Router over the route table', () => {
  it('finds every route of the table, and HEAD for every GET', () => {
    for (const r of ROUTES) {
      const path = r.path.replace(':id', 'job-1')
      assert.equal(route(router.find(r.method, path)).route, r, `${r.method} ${r.path}`)
      if (r.method === 'GET') assert.equal(route(router.find('HEAD', path)).route, r, `HEAD ${r.path}`)
    }
    assert.deepEqual(route(router.find('GET', '/backup/job-1')).params, { id: 'job-1' })
    assert.deepEqual(route(router.find('POST', '/restore/r.1/cancel')).params, { id: 'r.1' })
  })

  it('answers 405 with the methods of the path, in a fixed order', () => {
    const cases: [string, string][] = [
      ['/backup', 'GET, HEAD, POST, DELETE'],
      ['/restore', 'GET, HEAD, PUT, DELETE'],
      ['/backup/x', 'GET, HEAD'],
      ['/restore/x', 'GET, HEAD'],
      ['/backup/x/cancel', 'POST'],
      ['/restore/x/cancel', 'POST'],
      ['/status', 'GET, HEAD'],
      ['/healthz', 'GET, HEAD'],
      ['/metrics', 'GET, HEAD'],
      ['/openapi.json', 'GET, HEAD'],
      ['/docs', 'GET, HEAD'],
    ]
    for (const [path, allow] of cases) {
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND']) {
        const found = router.find(method, path)
        if (allow.split(', ').includes(method)) assert.equal(found.kind, 'route', `${method} ${path}`)
        else assert.equal(allowOf(found), allow, `${method} ${path}`)
      }
    }
  })

  it('answers 404 for paths the table does not have', () => {
    for (const path of [
      '/',
      '/nope',
      '//backup',
      '/BACKUP',
      '/Backup/x',
      '/backup/x/y',
      '/backup/x/',
      '/status/',
      '/backup/x/cancel/',
      '/restore/../backup',
      '/favicon.ico',
    ]) {
      for (const method of ['GET', 'POST', 'HEAD']) assert.equal(router.find(method, path).kind, 'not found', `${method} ${path}`)
    }
    assert.equal(router.find('GET', '*').kind, 'not found')
  })

  it('decodes each segment on its own: an encoded slash stays in its segment', () => {
    assert.deepEqual(route(router.find('GET', '/backup/a%2Fb')).params, { id: 'a/b' })
    assert.deepEqual(route(router.find('POST', '/backup/..%2F..%2Fetc/cancel')).params, { id: '../../etc' })
    assert.deepEqual(route(router.find('GET', '/backup/%2e%2e')).params, { id: '..' })
    assert.deepEqual(route(router.find('GET', '/backup/%E2%82%AC')).params, { id: '€' })
    assert.equal(route(router.find('GET', '/b%61ckup/x')).route.path, '/backup/:id')
    assert.equal(router.find('GET', '/backup%2Fx').kind, 'not found')
    for (const path of ['/backup/%zz', '/backup/%', '/backup/%ff%fe', '/backup/%C0%AF', '/%zz/x'])
      assert.equal(router.find('GET', path).kind, 'bad path', path)
  })

  it(`matches a parameter of up to ${MAX_PARAM_LENGTH} characters; a longer one answers 405 for every method`, () => {
    const fits = 'x'.repeat(MAX_PARAM_LENGTH)
    assert.equal(route(router.find('GET', `/backup/${fits}`)).params.id, fits)
    const long = 'x'.repeat(MAX_PARAM_LENGTH + 1)
    assert.equal(allowOf(router.find('GET', `/backup/${long}`)), 'GET, HEAD')
    assert.equal(allowOf(router.find('HEAD', `/restore/${long}`)), 'GET, HEAD')
    assert.equal(allowOf(router.find('POST', `/backup/${long}/cancel`)), 'POST')
    // the length counts decoded characters
    assert.equal(allowOf(router.find('GET', `/backup/${'%41'.repeat(MAX_PARAM_LENGTH + 1)}`)), 'GET, HEAD')
    assert.equal(route(router.find('GET', `/backup/${'%41'.repeat(MAX_PARAM_LENGTH)}`)).params.id, 'A'.repeat(MAX_PARAM_LENGTH))
  })

  it('gives an empty parameter for an empty segment', () => {
    assert.deepEqual(route(router.find('GET', '/backup/')).params, { id: '' })
    assert.deepEqual(route(router.find('POST', '/backup//cancel')).params, { id: '' })
  })

  it('leaves the query and a fragment out of the path', () => {
    const list = route(router.find('GET', '/backup?status=running&limit=5'))
    assert.equal(list.route.path, '/backup')
    assert.equal(list.query, 'status=running&limit=5')
    assert.deepEqual(route(router.find('GET', '/backup/x#frag')).params, { id: 'x' })
    assert.deepEqual(route(router.find('GET', '/backup/x?y=%zz')).params, { id: 'x' }, 'the query is not decoded here')
    assert.equal(route(router.find('GET', '/backup?')).query, '')
  })

  it('takes the path of an absolute-form target', () => {
    assert.deepEqual(route(router.find('GET', 'http://127.0.0.1:8080/backup/x')).params, { id: 'x' })
    assert.equal(route(router.find('GET', 'HTTPS://agent/backup?limit=1')).query, 'limit=1')
    assert.equal(router.find('GET', 'http://agent').kind, 'not found')
    for (const target of ['ftp://agent/backup', 'backup/x', 'http:///backup', 'http://agent/backup#x'])
      assert.equal(router.find('GET', target).kind, 'bad path', target)
  })

  it('answers a target it has seen the same way again, however many it has seen', () => {
    const fresh = new Router(ROUTES)
    const targets = [
      '/backup/job-1',
      '/backup/job-1?limit=1',
      '/nope',
      '/backup/%zz',
      `/backup/${'x'.repeat(300)}`,
      `/backup/${'x'.repeat(MAX_PARAM_LENGTH + 1)}`,
    ]
    for (let i = 0; i < 600; i++) targets.push(`/restore/id-${i}`, `/backup/id-${i}/cancel`)
    for (const round of [1, 2, 3]) {
      for (const target of targets) {
        for (const method of ['GET', 'HEAD', 'POST'])
          assert.deepEqual(fresh.find(method, target), router.find(method, target), `${round} ${method} ${target}`)
      }
    }
    const polled = route(fresh.find('GET', '/backup/job-1'))
    assert.equal(route(fresh.find('GET', '/backup/job-1')), polled, 'kept')
    assert.throws(() => {
      ;(polled.params as Record<string, string>).id = 'other'
    }, TypeError)
    assert.equal(route(fresh.find('GET', '/backup/job-1')).params.id, 'job-1')
    assert.equal(route(fresh.find('POST', '/backup/job-1/cancel')).params.id, 'job-1', 'another method of a kept target')
  })

  it('refuses a table that lists a route twice or two parameter names at one position', () => {
    const [first] = ROUTES as [Route]
    assert.throws(() => new Router([first, first]), /twice/)
    const poll = ROUTES.find((r) => r.path === '/backup/:id') as Route
    assert.throws(() => new Router([poll, { ...poll, method: 'POST', path: '/backup/:name' }]), /one parameter per position/)
  })

  it('agrees with a regular-expression oracle on generated paths and methods', () => {
    // The API's paths written out independently of the table (the agent's 405 rule before it had one).
    const oracle: [RegExp, string[]][] = [
      [/^\/(status|healthz|metrics|openapi\.json|docs)$/, ['GET', 'HEAD']],
      [/^\/backup$/, ['GET', 'HEAD', 'POST', 'DELETE']],
      [/^\/restore$/, ['GET', 'HEAD', 'PUT', 'DELETE']],
      [/^\/(backup|restore)\/[^/]*$/, ['GET', 'HEAD']],
      [/^\/(backup|restore)\/[^/]*\/cancel$/, ['POST']],
    ]
    const segment = fc.constantFrom(
      'backup',
      'restore',
      'status',
      'healthz',
      'metrics',
      'openapi.json',
      'docs',
      'cancel',
      'x',
      'job-1',
      '',
      'BACKUP',
      'a.b',
      'cancel2',
      '..',
    )
    const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS')
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), method, (segments, m) => {
        const path = `/${segments.join('/')}`
        const allowed = oracle.find(([pattern]) => pattern.test(path))?.[1]
        const found = router.find(m, path)
        if (allowed === undefined) return found.kind === 'not found'
        if (!allowed.includes(m)) return found.kind === 'method not allowed' && found.allow.join() === allowed.join()
        if (found.kind !== 'route') return false
        const expected = m === 'HEAD' ? 'GET' : m
        return found.route.method === expected && new RegExp(`^${found.route.path.replace(':id', '[^/]*')}$`).test(path)
      }),
      { numRuns: 3000 },
    )
  })
})
