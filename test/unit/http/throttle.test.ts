import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { LoginThrottle } from '../../../src/http/throttle.ts'

const T0 = 1_700_000_000_000

describe('LoginThrottle', () => {
  it('locks an address out after maxFailures within a minute, for a minute', () => {
    const throttle = new LoginThrottle({ maxFailures: 3, exempt: [] })
    assert.equal(throttle.recordFailure('10.0.0.1', T0), false)
    assert.equal(throttle.recordFailure('10.0.0.1', T0 + 1000), false)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 1000), 0)
    assert.equal(throttle.recordFailure('10.0.0.1', T0 + 2000), true)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 2000), 60)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 61_500), 1)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 62_000), 0, 'the window has passed')
    assert.equal(throttle.lockedFor('10.0.0.2', T0 + 2000), 0, 'other addresses are not affected')
  })

  it('counts only the failures of the last minute', () => {
    const throttle = new LoginThrottle({ maxFailures: 3, exempt: [] })
    throttle.recordFailure('10.0.0.1', T0)
    throttle.recordFailure('10.0.0.1', T0 + 30_000)
    assert.equal(throttle.recordFailure('10.0.0.1', T0 + 60_001), false, 'the first failure is older than a minute')
    assert.equal(throttle.recordFailure('10.0.0.1', T0 + 60_002), true)
  })

  it('starts counting afresh after a lockout', () => {
    const throttle = new LoginThrottle({ maxFailures: 2, exempt: [] })
    throttle.recordFailure('10.0.0.1', T0)
    assert.equal(throttle.recordFailure('10.0.0.1', T0), true)
    assert.equal(throttle.recordFailure('10.0.0.1', T0 + 61_000), false)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 61_000), 0)
  })

  it('never locks out exempt addresses and ranges, also in their IPv4-mapped IPv6 form', () => {
    const throttle = new LoginThrottle({ maxFailures: 1, exempt: ['10.0.0.5', '192.168.0.0/16', '::1'] })
    for (const address of ['10.0.0.5', '::ffff:10.0.0.5', '192.168.7.7', '::1']) {
      for (let i = 0; i < 5; i++) assert.equal(throttle.recordFailure(address, T0), false, address)
      assert.equal(throttle.lockedFor(address, T0), 0, address)
    }
    assert.equal(throttle.recordFailure('::ffff:10.0.0.6', T0), true)
    assert.equal(throttle.lockedFor('10.0.0.6', T0), 60, 'one address whichever way the socket spells it')
  })

  it('is off with maxFailures 0', () => {
    const throttle = new LoginThrottle({ maxFailures: 0, exempt: [] })
    for (let i = 0; i < 100; i++) assert.equal(throttle.recordFailure('10.0.0.1', T0), false)
    assert.equal(throttle.lockedFor('10.0.0.1', T0), 0)
    assert.equal(throttle.tracked, 0)
  })

  it('remembers a bounded number of addresses, and keeps locked ones over unlocked ones', () => {
    const throttle = new LoginThrottle({ maxFailures: 2, exempt: [], maxTracked: 100 })
    throttle.recordFailure('10.9.9.9', T0)
    throttle.recordFailure('10.9.9.9', T0)
    for (let i = 0; i < 10_000; i++) throttle.recordFailure(`10.1.${i >> 8}.${i & 255}`, T0 + 1)
    assert.ok(throttle.tracked <= 100, `${throttle.tracked} addresses tracked`)
    assert.equal(throttle.lockedFor('10.9.9.9', T0 + 2), 60, 'the locked address survived the flood')
  })

  it('forgets stale addresses when asked about them', () => {
    const throttle = new LoginThrottle({ maxFailures: 5, exempt: [] })
    throttle.recordFailure('10.0.0.1', T0)
    assert.equal(throttle.tracked, 1)
    assert.equal(throttle.lockedFor('10.0.0.1', T0 + 61_000), 0)
    assert.equal(throttle.tracked, 0)
  })
})
