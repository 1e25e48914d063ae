import { generateKeyPairSync, randomBytes } from 'node:crypto'
import forge from 'node-forge'

export interface CertificateOptions {
  /** @default 'localhost' */
  commonName?: string
  /** DNS names and IPs for subjectAltName. @default ['localhost', '127.0.0.1', '::1'] */
  altNames?: string[]
  /** Start of validity. @default one hour ago */
  notBefore?: Date
  /** End of validity. @default notBefore + `days` */
  notAfter?: Date
  /** @default 30 */
  days?: number
  /** RSA modulus length. @default 2048 */
  keySize?: number
  /** Sign with this CA instead of self-signing. */
  issuer?: GeneratedCertificate
  /** Make a CA certificate (basicConstraints cA). @default false */
  isCA?: boolean
}

export interface GeneratedCertificate {
  /** PEM certificate */
  cert: string
  /** PEM PKCS#8 private key */
  key: string
}

/**
 * Generate an RSA certificate at run time for TLS tests (node's crypto makes the key, node-forge
 * builds the certificate). Nothing generated here is ever written into the repository.
 */
export function generateCertificate(options: CertificateOptions = {}): GeneratedCertificate {
  const keySize = options.keySize ?? 2048
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: keySize })
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()

  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(pubPem)
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`
  const notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000)
  cert.validity.notBefore = notBefore
  cert.validity.notAfter =
    options.notAfter ?? new Date(notBefore.getTime() + (options.days ?? 30) * 86_400_000)
  const subject = [{ name: 'commonName', value: options.commonName ?? 'localhost' }]
  cert.setSubject(subject)
  const altNames = (options.altNames ?? ['localhost', '127.0.0.1', '::1']).map((n) =>
    /^[\d.]+$/.test(n) || n.includes(':') ? { type: 7, ip: n } : { type: 2, value: n },
  )
  const extensions: object[] = [
    { name: 'basicConstraints', cA: options.isCA ?? false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: options.isCA ?? false },
  ]
  if (!options.isCA) extensions.push({ name: 'extKeyUsage', serverAuth: true }, { name: 'subjectAltName', altNames })
  cert.setExtensions(extensions)
  let signingKey: forge.pki.PrivateKey
  if (options.issuer) {
    const issuerCert = forge.pki.certificateFromPem(options.issuer.cert)
    cert.setIssuer(issuerCert.subject.attributes)
    signingKey = forge.pki.privateKeyFromPem(options.issuer.key)
  } else {
    cert.setIssuer(subject)
    signingKey = forge.pki.privateKeyFromPem(
      privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    )
  }
  cert.sign(signingKey, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert), key: keyPem }
}
