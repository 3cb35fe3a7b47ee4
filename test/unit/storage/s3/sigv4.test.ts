// SigV4 for S3 against the example of AWS's own documentation ("Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk", GET Object); the integration
// tests then have the lab's s3api check real signatures. And the signer's core against vectors of
// AWS's SigV4 test suite (aws-sig-v4-test-suite, as kept in awslabs/aws-c-auth's
// tests/aws-signing-test-suite/v4/): its credentials, us-east-1, service `service`, 20150830T123600Z.
// The expected signatures are the suite's, copied, never computed here.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { authorization, EMPTY_SHA256, signS3Request, uriEncode } from '../../../../src/storage/s3/sigv4.ts'

describe('SigV4 for S3', () => {
  it("signs AWS's documented GET Object example to the documented signature", () => {
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
    assert.equal(uriEncode("a b/c!'()*~.-_+", true), 'a%20b/c%21%27%28%29%2A~.-_%2B')
    assert.equal(uriEncode('a/b'), 'a%2Fb')
    assert.equal(uriEncode('ümlaut'), '%C3%BCmlaut')
  })

  describe('AWS SigV4 test suite', () => {
    const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }
    const scope = { region: 'us-east-1', service: 'service', amzDate: '20150830T123600Z' }
    const credential = 'Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request'

    it('get-vanilla', () => {
      const headers = { host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z' }
      assert.equal(
        authorization({ method: 'GET', url: new URL('https://example.amazonaws.com/'), headers }, credentials, scope, EMPTY_SHA256),
        `AWS4-HMAC-SHA256 ${credential}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31`,
      )
    })

    it('get-vanilla-query-order-key-case: the query is signed sorted by name, whatever order it is sent in', () => {
      const headers = { host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z' }
      assert.equal(
        authorization(
          { method: 'GET', url: new URL('https://example.amazonaws.com/?Param2=value2&Param1=value1'), headers },
          credentials,
          scope,
          EMPTY_SHA256,
        ),
        `AWS4-HMAC-SHA256 ${credential}, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500`,
      )
    })

    it('post-x-www-form-urlencoded: a body, its length and its SHA-256 header signed', () => {
      const payloadHash = '9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e'
      assert.equal(createHash('sha256').update('Param1=value1').digest('hex'), payloadHash, "the suite's body and its x-amz-content-sha256")
      const headers = {
        'content-type': 'application/x-www-form-urlencoded',
        host: 'example.amazonaws.com',
        'content-length': '13',
        'x-amz-content-sha256': payloadHash,
        'x-amz-date': '20150830T123600Z',
      }
      assert.equal(
        authorization({ method: 'POST', url: new URL('https://example.amazonaws.com/'), headers }, credentials, scope, payloadHash),
        `AWS4-HMAC-SHA256 ${credential}, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b`,
      )
    })
  })
})
