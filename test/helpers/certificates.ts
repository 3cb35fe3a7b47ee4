// Certificates for the TLS tests, made with the openssl CLI in a directory of the test's own: a
// CA, a server certificate for 127.0.0.1 (and a second one, for rotation), a client certificate
// the CA signed, and a client certificate from another CA (the wrong one).
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface Pem {
  certFile: string
  keyFile: string
  cert: Buffer
  key: Buffer
}

export interface TestCertificates {
  caFile: string
  ca: Buffer
  server: Pem
  /** Another server certificate from the same CA, to rotate to. */
  rotated: Pem
  client: Pem
  /** A client certificate from a CA the agent does not trust. */
  wrongClient: Pem
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })

function selfSigned(dir: string, name: string, subject: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    subject,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
  ])
}

function signed(dir: string, name: string, ca: string, subject: string, extensions: string): Pem {
  openssl(dir, [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    subject,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  ])
  writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`)
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.pem`,
  ])
  return pem(dir, name)
}

function pem(dir: string, name: string): Pem {
  const certFile = join(dir, `${name}.pem`)
  const keyFile = join(dir, `${name}.key`)
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) }
}

export function makeCertificates(dir: string): TestCertificates {
  selfSigned(dir, 'ca', '/CN=agent test CA')
  selfSigned(dir, 'other-ca', '/CN=someone else')
  const serverExt = 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'
  const clientExt = 'extendedKeyUsage=clientAuth'
  return {
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem')),
    server: signed(dir, 'server', 'ca', '/CN=agent', serverExt),
    rotated: signed(dir, 'rotated', 'ca', '/CN=agent rotated', serverExt),
    client: signed(dir, 'client', 'ca', '/CN=manager', clientExt),
    wrongClient: signed(dir, 'wrong-client', 'other-ca', '/CN=manager', clientExt),
  }
}
