// The one retry policy of storage traffic (src/storage/http/retry.ts): which failures are tried
// again (every class Swift or S3 retried before they shared it), and the loop's limits.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { TransportError } from '../../../../src/storage/http/client.ts'
import { isTransientError, isTransientStatus, withRetries } from '../../../../src/storage/http/retry.ts'
import { isTransientS3Error, S3Error } from '../../../../src/storage/s3/errors.ts'

const socketError = (code: string) => Object.assign(new Error(code), { code })

describe('the storage retry policy', () => {
  it('retries timeouts, throttling (429, Swift ratelimit 498) and every server error, nothing else', () => {
    for (const status of [408, 429, 498, 500, 501, 502, 503, 504, 507, 599]) assert.ok(isTransientStatus(status), String(status))
    for (const status of [200, 301, 400, 401, 403, 404, 412, 413, 416, 600]) assert.ok(!isTransientStatus(status), String(status))
  })

  it('retries the network failures either backend retried, from a socket or as a TransportError', () => {
    for (const code of [
      'ECONNRESET',
      'ECONNREFUSED',
      'EPIPE',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EPROTO',
    ]) {
      assert.ok(isTransientError(socketError(code)), code)
      assert.ok(isTransientError(new TransportError(code, code)), code)
    }
    for (const code of ['CONNECT_TIMEOUT', 'IDLE_TIMEOUT', 'HPE_INVALID_CONSTANT', 'EIO'])
      assert.ok(isTransientError(new TransportError(code, code)), code)
  })

  it('never retries an abort, an untrusted certificate, or a failure of our own side', () => {
    assert.ok(!isTransientError(new TransportError('ABORTED', 'aborted')))
    for (const code of [
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'CERT_HAS_EXPIRED',
      'ERR_TLS_CERT_ALTNAME_INVALID',
    ]) {
      assert.ok(!isTransientError(new TransportError(code, code)), code)
    }
    for (const error of [socketError('ENOSPC'), socketError('EACCES'), new Error('no code'), undefined, null])
      assert.ok(!isTransientError(error), String(error))
  })

  it('S3 adds its own throttling codes and an error document under a 200 to the shared classes', () => {
    assert.ok(isTransientS3Error(new S3Error(200, 'InternalError', undefined, undefined)))
    assert.ok(isTransientS3Error(new S3Error(400, 'RequestTimeout', undefined, undefined)))
    assert.ok(isTransientS3Error(new S3Error(503, 'SlowDown', undefined, undefined)))
    assert.ok(isTransientS3Error(new S3Error(408, undefined, undefined, undefined)))
    assert.ok(isTransientS3Error(new TransportError('CONNECT_TIMEOUT', 'x')))
    assert.ok(!isTransientS3Error(new S3Error(403, 'AccessDenied', undefined, undefined)))
    assert.ok(!isTransientS3Error(new S3Error(404, 'NoSuchKey', undefined, undefined)))
    assert.ok(!isTransientS3Error(new TransportError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'x')))
  })

  it('tries `retries` more times, then fails with the last failure', async () => {
    let tries = 0
    const failing = () => {
      tries++
      return Promise.reject(new TransportError('ECONNRESET', `try ${tries}`))
    }
    await assert.rejects(withRetries({ retries: 2, transient: isTransientError }, failing), /try 3/)
    assert.equal(tries, 3)
  })

  it('returns the first success, and passes each attempt its number', async () => {
    const seen: number[] = []
    const result = await withRetries({ retries: 5, transient: isTransientError }, async (n) => {
      seen.push(n)
      if (n < 1) throw new TransportError('ECONNRESET', 'reset')
      return 'done'
    })
    assert.equal(result, 'done')
    assert.deepEqual(seen, [0, 1])
  })

  it('does not try again after a failure that is not transient, or once aborted', async () => {
    let tries = 0
    await assert.rejects(
      withRetries({ retries: 5, transient: isTransientError }, async () => {
        tries++
        throw new Error('refused')
      }),
      /refused/,
    )
    assert.equal(tries, 1)
    const controller = new AbortController()
    tries = 0
    await assert.rejects(
      withRetries({ retries: 5, signal: controller.signal, transient: () => true }, async () => {
        tries++
        controller.abort()
        throw new TransportError('ECONNRESET', 'reset while aborting')
      }),
      /reset while aborting/,
    )
    assert.equal(tries, 1)
  })
})
