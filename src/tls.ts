// Trust for outgoing TLS: Node's bundled CAs, the system store (BOSH installs trusted
// certificates there) and an optional ca_file. The ca_file is read at start (an unreadable one
// stops the start); the list is installed before the first HTTPS storage connection (applyTrust,
// from src/storage/http/: client.ts, agents.ts and kept-buffer-get.ts): reading and installing the system store
// cost about a tenth of the start-up time and ~8 MB of RSS for good (576 system certificates
// here), and node:tls ~6 MB more, which an agent whose storage speaks plain HTTP does not need.
import { readFileSync } from 'node:fs'
import { tls } from './util/builtins.ts'

/** Certificates of ca_file, once trustCertificates ran; undefined before (tests: Node's defaults). */
let extra: string[] | undefined
let applied = false

export function trustCertificates(caFile: string | undefined): void {
  extra = caFile === undefined ? [] : splitPem(readFileSync(caFile, 'utf8'))
  applied = false
}

/** Installs the trusted list; idempotent, called before any outgoing HTTPS storage connection. */
export function applyTrust(): void {
  if (applied || extra === undefined) return
  const { getCACertificates, setDefaultCACertificates } = tls()
  setDefaultCACertificates([...getCACertificates('bundled'), ...getCACertificates('system'), ...extra])
  applied = true
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}
