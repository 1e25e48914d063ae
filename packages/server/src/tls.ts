import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type tls from 'node:tls'
import type { Logger } from '@gatehouse/core'

/**
 * IANA cipher suite names (what the config takes, as in RFC 8446 and the IANA registry) to the
 * OpenSSL names Node's `ciphers` option takes. TLS 1.3 suites have the same name in both.
 */
export const IANA_TO_OPENSSL: Readonly<Record<string, string>> = Object.freeze({
  TLS_AES_128_GCM_SHA256: 'TLS_AES_128_GCM_SHA256',
  TLS_AES_256_GCM_SHA384: 'TLS_AES_256_GCM_SHA384',
  TLS_CHACHA20_POLY1305_SHA256: 'TLS_CHACHA20_POLY1305_SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_DHE_RSA_WITH_AES_128_GCM_SHA256: 'DHE-RSA-AES128-GCM-SHA256',
  TLS_DHE_RSA_WITH_AES_256_GCM_SHA384: 'DHE-RSA-AES256-GCM-SHA384',
  TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'DHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384: 'ECDHE-ECDSA-AES256-SHA384',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384: 'ECDHE-RSA-AES256-SHA384',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
})

/** Map configured IANA names; returns the OpenSSL list and the names that are not known. */
export function mapCipherSuites(names: readonly string[]): { ciphers: string; unknown: string[] } {
  const unknown = names.filter((n) => !(n in IANA_TO_OPENSSL))
  return { ciphers: names.map((n) => IANA_TO_OPENSSL[n]).filter(Boolean).join(':'), unknown }
}

export interface TlsSettings {
  certFile: string
  keyFile: string
  minVersion: '1.2' | '1.3'
  cipherSuites?: readonly string[] | undefined
}

/** The secure-context options for the current certificate files. Reads the files. */
export function secureContextOptions(s: TlsSettings): tls.SecureContextOptions {
  const opts: tls.SecureContextOptions = {
    cert: readFileSync(s.certFile),
    key: readFileSync(s.keyFile),
    minVersion: s.minVersion === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    honorCipherOrder: true,
  }
  if (s.cipherSuites?.length) opts.ciphers = mapCipherSuites(s.cipherSuites).ciphers
  return opts
}

/**
 * Watch the certificate and key and swap the server's secure context when they change: new
 * handshakes get the new certificate, open connections keep theirs. Directories are watched (an
 * atomic rename replaces the file's inode) with a stat poll as the fallback.
 */
export function watchCertificates(
  server: tls.Server,
  s: TlsSettings,
  logger: Logger,
  pollMs = 2000,
): { close(): void; reloadNow(): boolean } {
  const signature = (): string =>
    [s.certFile, s.keyFile]
      .map((f) => {
        try {
          const st = statSync(f)
          return `${st.ino}:${st.size}:${st.mtimeMs}`
        } catch {
          return 'missing'
        }
      })
      .join('|')
  let last = signature()
  let timer: NodeJS.Timeout | undefined
  const reloadNow = (): boolean => {
    const sig = signature()
    if (sig === last) return false
    try {
      server.setSecureContext(secureContextOptions(s))
      last = sig
      logger.info('TLS certificate reloaded', { cert_file: s.certFile })
      return true
    } catch (err) {
      // A half-written pair (new cert, old key) fails here; the old context stays until both match.
      logger.error('TLS certificate reload failed; keeping the previous certificate', { error: String(err) })
      return false
    }
  }
  const schedule = (): void => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(reloadNow, 100)
    timer.unref()
  }
  const watchers: FSWatcher[] = []
  for (const dir of new Set([dirname(s.certFile), dirname(s.keyFile)])) {
    try {
      const names = new Set([basename(s.certFile), basename(s.keyFile)])
      const w = watch(dir, (_event, file) => {
        if (!file || names.has(file.toString())) schedule()
      })
      w.unref()
      watchers.push(w)
    } catch {
      // watching is an optimisation; the poll below still catches every change
    }
  }
  const poll = setInterval(reloadNow, pollMs)
  poll.unref()
  return {
    reloadNow,
    close: () => {
      clearInterval(poll)
      if (timer) clearTimeout(timer)
      for (const w of watchers) w.close()
    },
  }
}
