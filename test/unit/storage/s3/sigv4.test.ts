// SigV4 for S3 against the example of AWS's own documentation ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk", GET Object); the integration
// tests then have the lab's s3api check real signatures.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { EMPTY_SHA256, signS3Request, uriEncode } from '../../../../src/storage/s3/sigv4.ts'

describe('SigV4 for S3', () => {
  it('signs AWS\'s documented GET Object example to the documented signature', () => {
    const headers = signS3Request(
      { method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: { range: 'bytes=0-9' } },
      { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      'us-east-1',
      EMPTY_SHA256,
      new Date('2013-05-24T00:00:00Z'),
    )
    assert.equal(
      headers.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    )
    assert.equal(headers['x-amz-date'], '20130524T000000Z')
  })

  it('encodes keys as S3 expects: reserved characters escaped once, slashes kept in paths', () => {
    assert.equal(uriEncode("a b/c!'()*~.-_+", true), "a%20b/c%21%27%28%29%2A~.-_%2B")
    assert.equal(uriEncode('a/b'), 'a%2Fb')
    assert.equal(uriEncode('ümlaut'), '%C3%BCmlaut')
  })
})
