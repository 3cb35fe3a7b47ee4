// TLS for the API listener: tls_cert_file and tls_key_file switch it to HTTPS, tls_client_ca_file
// also requires a client certificate signed by that CA. The files are read again on SIGHUP
// (certificate rotation without a restart); a reload that fails keeps the certificates in use.
//
// (src/tls.ts is the other direction: which CAs the agent trusts for outgoing connections.)
import { readFile } from 'node:fs/promises'
import type { ServerOptions } from 'node:https'
import type { Server as TlsServer } from 'node:tls'
import type { Config } from '../config.ts'
import { tls } from '../util/builtins.ts'
import { HANDSHAKE_TIMEOUT_MS } from './limits.ts'

export type TlsFiles = Pick<Config, 'tlsCertFile' | 'tlsKeyFile' | 'tlsClientCaFile'>

/** The PEM contents of the configured files. */
export interface TlsMaterial {
  cert: Buffer
  key: Buffer
  ca: Buffer | undefined
}

export type TlsLoad = { ok: true; material: TlsMaterial } | { ok: false; error: string }

/** Reads and checks the files (the key must match the certificate); undefined without TLS. */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsLoad | undefined> {
  if (files.tlsCertFile === undefined || files.tlsKeyFile === undefined) return undefined
  const read = async (setting: string, path: string) => {
    try {
      return await readFile(path)
    } catch (error) {
      // The path and the reason only: never the contents of a key file.
      throw new Error(`${setting} ${path} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  try {
    const cert = await read('tls_cert_file', files.tlsCertFile)
    const key = await read('tls_key_file', files.tlsKeyFile)
    const ca = files.tlsClientCaFile === undefined ? undefined : await read('tls_client_ca_file', files.tlsClientCaFile)
    try {
      tls().createSecureContext({ cert, key, ca })
    } catch (error) {
      throw new Error(`tls_cert_file, tls_key_file or tls_client_ca_file is not usable: ${(error as Error).message}`)
    }
    return { ok: true, material: { cert, key, ca } }
  } catch (error) {
    return { ok: false, error: (error as Error).message }
  }
}

/** Options for https.createServer. */
export function httpsOptions(material: TlsMaterial): ServerOptions {
  const clientCertificates = material.ca !== undefined
  return {
    cert: material.cert,
    key: material.key,
    ca: material.ca,
    minVersion: 'TLSv1.2',
    requestCert: clientCertificates,
    // With a client CA, a connection without a certificate it signed ends in the handshake,
    // before any HTTP is read.
    rejectUnauthorized: clientCertificates,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  }
}

/**
 * Swaps the certificates of a running server; new connections use them, open ones keep theirs.
 * Whether client certificates are required is fixed at start (a restart changes it).
 */
export function applyTlsMaterial(server: TlsServer, material: TlsMaterial): void {
  server.setSecureContext({ cert: material.cert, key: material.key, ca: material.ca })
}
