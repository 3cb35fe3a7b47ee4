// Trust for outgoing TLS: Node's bundled CAs, the system store (BOSH installs trusted
// certificates there) and an optional ca_file. Set once at start, before any connection.
import { readFileSync } from 'node:fs'
import tls from 'node:tls'

export function trustCertificates(caFile: string | undefined): void {
  const certificates = [...tls.getCACertificates('bundled'), ...tls.getCACertificates('system')]
  if (caFile !== undefined) certificates.push(...splitPem(readFileSync(caFile, 'utf8')))
  tls.setDefaultCACertificates(certificates)
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}
