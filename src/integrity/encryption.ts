// Agent-side authenticated encryption of streamed backups: AES-256-GCM in fixed-size frames.
//
// Frame i is encrypted with nonce = prefix (7 random bytes) | i (u32 BE) | last (1 byte), and the
// stream's header as additional data. Changing, dropping, reordering or cutting frames therefore
// fails authentication, and a frame's bytes are only passed on once its tag checked out.
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  scryptSync,
  constants,
  type KeyObject,
} from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { JobError } from '../errors.ts'
import { FRAME_BYTES, TAG_BYTES, type Encryption } from './format.ts'

const SCRYPT = { N: 2 ** 15, r: 8, p: 1 }
const SCRYPT_MAX_N = 2 ** 20
const WRAP_INFO = Buffer.from('osb-backup-agent v1 data key')

/** "none" (the manager's word for a plan without a key) and the empty string mean: no encryption. */
export function wantsEncryption(key: string): boolean {
  return key !== '' && key !== 'none'
}

/**
 * For a backup: a passphrase goes through scrypt; a PEM public key (X25519 or RSA) gets a random
 * data key wrapped for it, so the agent never holds the means to decrypt what it wrote.
 */
export function encryptionForBackup(key: string): { encryption: Encryption; dataKey: Buffer } {
  const noncePrefix = randomBytes(7).toString('base64')
  if (/-----BEGIN PGP/.test(key))
    throw new JobError(
      'the encryption_key is a PGP key block, which the agent cannot use: give a passphrase or a PEM public key (X25519 or RSA)',
    )
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key))
    throw new JobError('the encryption_key for a backup is a private key: give the PEM public key (the private key is for restores)')
  if (/-----BEGIN PUBLIC KEY-----/.test(key)) {
    const publicKey = parsePublicKey(key)
    const dataKey = randomBytes(32)
    if (publicKey.asymmetricKeyType === 'x25519') {
      const ephemeral = generateKeyPairSync('x25519')
      const salt = randomBytes(16)
      const wrapKey = wrappingKey(diffieHellman({ privateKey: ephemeral.privateKey, publicKey }), salt)
      const wrapNonce = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', wrapKey, wrapNonce)
      const wrapped = Buffer.concat([cipher.update(dataKey), cipher.final(), cipher.getAuthTag()])
      return {
        dataKey,
        encryption: {
          mode: 'x25519',
          ephemeral_public: ephemeral.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
          salt: salt.toString('base64'),
          wrapped_key: wrapped.toString('base64'),
          wrap_nonce: wrapNonce.toString('base64'),
          nonce_prefix: noncePrefix,
        },
      }
    }
    if (publicKey.asymmetricKeyType === 'rsa') {
      const wrapped = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey)
      return { dataKey, encryption: { mode: 'rsa-oaep', wrapped_key: wrapped.toString('base64'), nonce_prefix: noncePrefix } }
    }
    throw new JobError(`the encryption_key is a ${publicKey.asymmetricKeyType} public key; only X25519 and RSA keys are supported`)
  }
  const salt = randomBytes(16)
  return {
    dataKey: scryptSync(key, salt, 32, { ...SCRYPT, maxmem: 256 * SCRYPT.N * SCRYPT.r }),
    encryption: { mode: 'passphrase', kdf: 'scrypt', salt: salt.toString('base64'), ...SCRYPT, nonce_prefix: noncePrefix },
  }
}

/** For a restore: the data key from the header and the request's key (passphrase or PEM private key). */
export function dataKeyForRestore(encryption: Exclude<Encryption, { mode: 'none' }>, key: string): Buffer {
  if (!wantsEncryption(key)) throw new JobError('the backup is encrypted but the restore request has no encryption_key')
  switch (encryption.mode) {
    case 'passphrase': {
      const { N, r, p } = encryption
      if (!(N >= 2 && N <= SCRYPT_MAX_N && r >= 1 && r <= 32 && p >= 1 && p <= 16))
        throw new JobError('corrupt streamed backup: unusable scrypt parameters')
      return scryptSync(key, Buffer.from(encryption.salt, 'base64'), 32, { N, r, p, maxmem: 256 * N * r })
    }
    case 'x25519': {
      const privateKey = parsePrivateKey(key, 'x25519')
      const ephemeral = createPublicKey({ key: Buffer.from(encryption.ephemeral_public, 'base64'), format: 'der', type: 'spki' })
      const wrapKey = wrappingKey(diffieHellman({ privateKey, publicKey: ephemeral }), Buffer.from(encryption.salt, 'base64'))
      const wrapped = Buffer.from(encryption.wrapped_key, 'base64')
      try {
        const decipher = createDecipheriv('aes-256-gcm', wrapKey, Buffer.from(encryption.wrap_nonce, 'base64'))
        decipher.setAuthTag(wrapped.subarray(wrapped.length - TAG_BYTES))
        return Buffer.concat([decipher.update(wrapped.subarray(0, wrapped.length - TAG_BYTES)), decipher.final()])
      } catch {
        throw new JobError("wrong key: the encryption_key does not unwrap this backup's data key")
      }
    }
    case 'rsa-oaep': {
      const privateKey = parsePrivateKey(key, 'rsa')
      try {
        return privateDecrypt(
          { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
          Buffer.from(encryption.wrapped_key, 'base64'),
        )
      } catch {
        throw new JobError("wrong key: the encryption_key does not unwrap this backup's data key")
      }
    }
  }
}

function wrappingKey(shared: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, salt, WRAP_INFO, 32))
}

function parsePublicKey(pem: string): KeyObject {
  try {
    return createPublicKey(pem)
  } catch {
    throw new JobError('the encryption_key looks like a PEM public key but cannot be read')
  }
}

function parsePrivateKey(pem: string, type: 'x25519' | 'rsa'): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new JobError(
      `the backup was encrypted for a ${type === 'rsa' ? 'RSA' : 'X25519'} public key: the restore needs the matching PEM private key as encryption_key`,
    )
  }
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    throw new JobError('the encryption_key looks like a PEM private key but cannot be read')
  }
  if (key.asymmetricKeyType !== type)
    throw new JobError(`wrong key: the backup needs a ${type} private key, the encryption_key is ${key.asymmetricKeyType}`)
  return key
}

function frameNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12)
  prefix.copy(nonce, 0, 0, 7)
  nonce.writeUInt32BE(index, 7)
  nonce[11] = last ? 1 : 0
  return nonce
}

/** Plaintext in, frames out (each ciphertext followed by its tag); the header is bound as AAD. */
export class EncryptFrames extends Transform {
  readonly #key: Buffer
  readonly #prefix: Buffer
  readonly #aad: Buffer
  #pending: Buffer[] = []
  #pendingBytes = 0
  #index = 0

  constructor(dataKey: Buffer, noncePrefix: string, aad: Buffer) {
    super()
    this.#key = dataKey
    this.#prefix = Buffer.from(noncePrefix, 'base64')
    this.#aad = aad
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    this.#pending.push(chunk)
    this.#pendingBytes += chunk.length
    // Hold at least one byte back: the last frame must carry the last-frame flag.
    while (this.#pendingBytes > FRAME_BYTES) {
      const all = Buffer.concat(this.#pending)
      this.push(this.#seal(all.subarray(0, FRAME_BYTES), false))
      this.#pending = [all.subarray(FRAME_BYTES)]
      this.#pendingBytes = all.length - FRAME_BYTES
    }
    done()
  }

  override _flush(done: TransformCallback): void {
    this.push(this.#seal(Buffer.concat(this.#pending), true))
    done()
  }

  #seal(plaintext: Buffer, last: boolean): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.#key, frameNonce(this.#prefix, this.#index++, last))
    cipher.setAAD(this.#aad)
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  }
}

/** A frame whose tag did not check out: which one (0-based), so a verify can say where. */
export class FrameAuthenticationError extends JobError {
  override name = 'FrameAuthenticationError'
  readonly frame: number
  constructor(frame: number) {
    super(`encrypted backup failed authentication at frame ${frame}: it was truncated or tampered with, or the key is wrong`)
    this.frame = frame
  }
}

/** Frames in, authenticated plaintext out; a missing, changed or reordered frame is an error. */
export class DecryptFrames extends Transform {
  // jscpd:ignore-start - the frame key, nonce prefix and AAD are held as EncryptFrames holds them:
  // the two classes are each other's mirror, and a shared holder would only move four assignments.
  readonly #key: Buffer
  readonly #prefix: Buffer
  readonly #aad: Buffer
  #buffer: Buffer = Buffer.alloc(0)
  #index = 0

  constructor(dataKey: Buffer, noncePrefix: string, aad: Buffer) {
    super()
    this.#key = dataKey
    this.#prefix = Buffer.from(noncePrefix, 'base64')
    this.#aad = aad
  }
  // jscpd:ignore-end

  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    const frame = FRAME_BYTES + TAG_BYTES
    try {
      // A full-sized frame is only known not to be the last once more bytes follow it.
      while (this.#buffer.length > frame) {
        this.push(this.#open(this.#buffer.subarray(0, frame), false))
        this.#buffer = this.#buffer.subarray(frame)
      }
      done()
    } catch (error) {
      done(error as Error)
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.#buffer.length < TAG_BYTES) throw new FrameAuthenticationError(this.#index)
      this.push(this.#open(this.#buffer, true))
      done()
    } catch (error) {
      done(error as Error)
    }
  }

  #open(frame: Buffer, last: boolean): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.#key, frameNonce(this.#prefix, this.#index++, last))
    decipher.setAAD(this.#aad)
    decipher.setAuthTag(frame.subarray(frame.length - TAG_BYTES))
    try {
      return Buffer.concat([decipher.update(frame.subarray(0, frame.length - TAG_BYTES)), decipher.final()])
    } catch {
      throw new FrameAuthenticationError(this.#index - 1)
    }
  }
}
