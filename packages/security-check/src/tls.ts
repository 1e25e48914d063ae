import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { resolveTlsConfig, type CheckTlsOptions } from './options'
import { displayPath } from './secrets/files'

export type TlsFindingKind =
  /** The certificate file is missing or unreadable. */
  | 'cert-unreadable'
  /** The file holds no parseable certificate. */
  | 'cert-invalid'
  /** A certificate in the file has expired. */
  | 'cert-expired'
  /** A certificate in the file is not valid yet. */
  | 'cert-not-yet-valid'
  /** A certificate in the file expires within `minDays`. */
  | 'cert-expiring'
  /** The key file is missing or unreadable. */
  | 'key-unreadable'
  /** The key file holds no parseable private key (or an encrypted one). */
  | 'key-invalid'
  /** The private key does not belong to the certificate. */
  | 'key-mismatch'
  /** RSA or DSA under 2048 bits, or an EC curve under 256 bits. */
  | 'weak-key'
  /** The key file can be read by group or others (it should be 0600). */
  | 'key-permissions'

export interface TlsFinding {
  readonly kind: TlsFindingKind
  /** The file concerned, relative to `cwd`. */
  readonly file: string
  /** One sentence for people. */
  readonly message: string
}

export interface CertificateInfo {
  readonly subject: string
  readonly issuer: string
  readonly subjectAltName: string | undefined
  readonly serialNumber: string
  readonly validFrom: string
  readonly validTo: string
  /** Whole days left until `validTo` (negative once expired). */
  readonly daysLeft: number
  readonly fingerprint256: string
  /** `rsa`, `ec`, `ed25519`, … */
  readonly keyType: string
  /** RSA/DSA modulus length, or the EC curve's size. */
  readonly keyBits: number | undefined
  /** Certificates in the file (the leaf first). */
  readonly chainLength: number
}

export interface TlsResult {
  /** True when there is no finding. */
  readonly ok: boolean
  readonly findings: TlsFinding[]
  /** The leaf certificate, when it could be read. */
  readonly certificate: CertificateInfo | undefined
}

const DAY_MS = 86_400_000
const MAX_CERT_FILE = 1024 * 1024
const EC_BITS: Record<string, number> = {
  prime192v1: 192,
  secp192r1: 192,
  secp224r1: 224,
  prime256v1: 256,
  secp256r1: 256,
  secp256k1: 256,
  secp384r1: 384,
  secp521r1: 521,
}

function keyStrength(key: KeyObject): { type: string; bits: number | undefined; weak: boolean } {
  const type = key.asymmetricKeyType ?? 'unknown'
  const details = key.asymmetricKeyDetails ?? {}
  if (type === 'rsa' || type === 'rsa-pss' || type === 'dsa') {
    const bits = details.modulusLength
    return { type, bits, weak: bits !== undefined && bits < 2048 }
  }
  if (type === 'ec') {
    const bits = details.namedCurve !== undefined ? EC_BITS[details.namedCurve] : undefined
    return { type, bits, weak: bits !== undefined && bits < 256 }
  }
  return { type, bits: undefined, weak: false }
}

/** Every certificate in a PEM file (a chain is fine), or the single certificate of a DER file. */
function parseCertificates(data: Buffer): X509Certificate[] {
  const text = data.toString('latin1')
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]{1,200000}-----END CERTIFICATE-----/g)
  if (blocks) return blocks.map((b) => new X509Certificate(b))
  return [new X509Certificate(data)]
}

/**
 * Check a TLS certificate (and its key): readable, valid now, not expiring within `minDays`, the key
 * matches the certificate, no weak key, and the key file not readable by others.
 */
export async function checkTls(options: CheckTlsOptions): Promise<TlsResult> {
  const config = resolveTlsConfig(options)
  const findings: TlsFinding[] = []
  const certPath = resolve(config.cwd, config.cert)
  const certRel = displayPath(config.cwd, certPath)
  const add = (kind: TlsFindingKind, file: string, message: string): void => {
    findings.push({ kind, file, message })
  }

  let certs: X509Certificate[] = []
  try {
    const st = await stat(certPath)
    if (!st.isFile() || st.size > MAX_CERT_FILE) throw new Error('not a certificate file')
    const data = await readFile(certPath)
    try {
      certs = parseCertificates(data)
    } catch {
      add('cert-invalid', certRel, `${certRel} holds no readable certificate (PEM or DER)`)
    }
  } catch {
    add('cert-unreadable', certRel, `${certRel} cannot be read`)
  }

  const now = Date.now()
  let info: CertificateInfo | undefined
  certs.forEach((cert, i) => {
    const which =
      i === 0 ? 'certificate' : `chain certificate ${i + 1} (${cert.subject.split('\n').join(', ')})`
    const from = Date.parse(cert.validFrom)
    const to = Date.parse(cert.validTo)
    const daysLeft = Math.floor((to - now) / DAY_MS)
    if (to <= now)
      add('cert-expired', certRel, `${certRel}: ${which} expired on ${new Date(to).toISOString()}`)
    else if (from > now)
      add(
        'cert-not-yet-valid',
        certRel,
        `${certRel}: ${which} is not valid before ${new Date(from).toISOString()}`,
      )
    else if (to - now < config.minDays * DAY_MS) {
      add(
        'cert-expiring',
        certRel,
        `${certRel}: ${which} expires in ${daysLeft} days (${new Date(to).toISOString()}), under the ${config.minDays}-day minimum`,
      )
    }
    if (i === 0) {
      const strength = keyStrength(cert.publicKey)
      if (strength.weak) {
        add(
          'weak-key',
          certRel,
          `${certRel}: ${strength.type.toUpperCase()} key of ${strength.bits} bits; use RSA 2048+ or EC P-256+`,
        )
      }
      info = {
        subject: cert.subject,
        issuer: cert.issuer,
        subjectAltName: cert.subjectAltName,
        serialNumber: cert.serialNumber,
        validFrom: new Date(from).toISOString(),
        validTo: new Date(to).toISOString(),
        daysLeft,
        fingerprint256: cert.fingerprint256,
        keyType: strength.type,
        keyBits: strength.bits,
        chainLength: certs.length,
      }
    }
  })

  if (config.key !== undefined) {
    const keyPath = resolve(config.cwd, config.key)
    const keyRel = displayPath(config.cwd, keyPath)
    let keyData: Buffer | undefined
    try {
      const st = await stat(keyPath)
      if (!st.isFile() || st.size > MAX_CERT_FILE) throw new Error('not a key file')
      if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
        add(
          'key-permissions',
          keyRel,
          `${keyRel}: mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, the private key must be 0600`,
        )
      }
      keyData = await readFile(keyPath)
    } catch {
      add('key-unreadable', keyRel, `${keyRel} cannot be read`)
    }
    if (keyData !== undefined) {
      let key: KeyObject | undefined
      try {
        key = createPrivateKey(keyData)
      } catch {
        try {
          key = createPrivateKey({ key: keyData, format: 'der', type: 'pkcs8' })
        } catch {
          add(
            'key-invalid',
            keyRel,
            `${keyRel} holds no readable private key (PEM or DER; encrypted keys are not supported)`,
          )
        }
      }
      keyData.fill(0)
      const leaf = certs[0]
      if (key !== undefined && leaf !== undefined) {
        let matches = false
        try {
          matches = leaf.checkPrivateKey(key)
        } catch {
          matches = false
        }
        if (!matches) add('key-mismatch', keyRel, `${keyRel} is not the private key of ${certRel}`)
      }
    }
  }
  return { ok: findings.length === 0, findings, certificate: info }
}
