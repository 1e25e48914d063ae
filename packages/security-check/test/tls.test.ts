import { generateKeyPairSync } from 'node:crypto'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateCertificate } from '@gatehouse/testing'
import { checkTls, type TlsResult } from '../src'
import { expectMasked, runCli, tempDir } from './helpers'

const DAY = 86_400_000
const kinds = (r: TlsResult): string[] => r.findings.map((f) => f.kind).sort()

describe('checkTls with certificates generated at run time', () => {
  let dir: string
  let cleanup: () => void
  const put = (name: string, pem: string, mode = 0o600): string => {
    writeFileSync(join(dir, name), pem, { mode })
    chmodSync(join(dir, name), mode)
    return name
  }

  // One valid pair for the tests that only need "a good certificate" (RSA keys are slow to make).
  let valid: { cert: string; key: string }
  beforeAll(() => {
    ;({ dir, cleanup } = tempDir())
    valid = generateCertificate({ days: 90 })
  })
  afterAll(() => cleanup())

  it('passes a valid certificate with its own key', async () => {
    const { cert, key } = valid
    const result = await checkTls({ cert: put('ok.crt', cert), key: put('ok.key', key), cwd: dir })
    expect(result.ok).toBe(true)
    expect(result.findings).toEqual([])
    expect(result.certificate).toMatchObject({
      subject: 'CN=localhost',
      keyType: 'rsa',
      keyBits: 2048,
      chainLength: 1,
    })
    expect(result.certificate!.daysLeft).toBeGreaterThanOrEqual(88)
    const cli = await runCli(['tls', '--cert', 'ok.crt', '--key', 'ok.key'], { cwd: dir })
    expect(cli.code).toBe(0)
    expect(cli.stdout).toMatch(
      /^ok\.crt: CN=localhost, RSA 2048, valid until \S+ \(\d+ days\)\ngatehouse-check tls: ok\n$/,
    )
    // Nothing of the private key is printed.
    expectMasked(cli.stdout + cli.stderr, [key.split('\n').slice(1, -2).join('')])
  })

  it('reports an expired certificate', async () => {
    const { cert } = generateCertificate({ notBefore: new Date(Date.now() - 60 * DAY), days: 30 })
    const result = await checkTls({ cert: put('expired.crt', cert), cwd: dir })
    expect(kinds(result)).toEqual(['cert-expired'])
    expect(result.certificate!.daysLeft).toBeLessThan(0)
    const cli = await runCli(['tls', '--cert', 'expired.crt'], { cwd: dir })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toContain('expired.crt: certificate expired on ')
  })

  it('reports a certificate expiring within --min-days, and not with a smaller minimum', async () => {
    const { cert } = generateCertificate({ days: 5 })
    put('soon.crt', cert)
    expect(kinds(await checkTls({ cert: 'soon.crt', cwd: dir }))).toEqual(['cert-expiring'])
    expect(kinds(await checkTls({ cert: 'soon.crt', cwd: dir, minDays: 1 }))).toEqual([])
    const cli = await runCli(['tls', '--cert', 'soon.crt', '--min-days', '10'], { cwd: dir })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toMatch(/soon\.crt: certificate expires in 4 days .*under the 10-day minimum/)
    expect((await runCli(['tls', '--cert', 'soon.crt', '--min-days', '2'], { cwd: dir })).code).toBe(0)
  })

  it('reports a certificate that is not valid yet', async () => {
    const { cert } = generateCertificate({ notBefore: new Date(Date.now() + 2 * DAY), days: 90 })
    expect(kinds(await checkTls({ cert: put('future.crt', cert), cwd: dir }))).toEqual(['cert-not-yet-valid'])
  })

  it('reports a key that does not match the certificate', async () => {
    const other = generateCertificate({ days: 90 })
    const result = await checkTls({ cert: put('a.crt', valid.cert), key: put('b.key', other.key), cwd: dir })
    expect(kinds(result)).toEqual(['key-mismatch'])
    const cli = await runCli(['tls', '--cert', 'a.crt', '--key', 'b.key'], { cwd: dir })
    expect(cli.code).toBe(1)
    expect(cli.stdout).toContain('b.key is not the private key of a.crt')
  })

  it('reports a key of another type as a mismatch', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString()
    expect(
      kinds(await checkTls({ cert: put('a2.crt', valid.cert), key: put('ec.key', ec), cwd: dir })),
    ).toEqual(['key-mismatch'])
  })

  it('reports an RSA 1024 key as weak', async () => {
    const { cert, key } = generateCertificate({ days: 90, keySize: 1024 })
    const result = await checkTls({ cert: put('weak.crt', cert), key: put('weak.key', key), cwd: dir })
    expect(kinds(result)).toEqual(['weak-key'])
    expect(result.findings[0]!.message).toContain('RSA key of 1024 bits')
  })

  it('reports a private key readable by group or others', async () => {
    const { cert, key } = valid
    const result = await checkTls({
      cert: put('p.crt', cert, 0o644),
      key: put('p.key', key, 0o644),
      cwd: dir,
    })
    expect(kinds(result)).toEqual(['key-permissions'])
    expect(result.findings[0]!.message).toBe('p.key: mode 0644, the private key must be 0600')
  })

  it('checks every certificate of a chain file and names the one that expires', async () => {
    const ca = generateCertificate({ isCA: true, commonName: 'Gatehouse Test CA', days: 3 })
    const leaf = generateCertificate({ issuer: ca, days: 90 })
    const result = await checkTls({
      cert: put('chain.crt', leaf.cert + ca.cert),
      key: put('leaf.key', leaf.key),
      cwd: dir,
    })
    expect(kinds(result)).toEqual(['cert-expiring'])
    expect(result.findings[0]!.message).toContain('chain certificate 2 (CN=Gatehouse Test CA)')
    expect(result.certificate!.chainLength).toBe(2)
  })

  it('reads a DER certificate', async () => {
    const { cert } = valid
    const der = Buffer.from(cert.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64')
    writeFileSync(join(dir, 'cert.der'), der)
    expect((await checkTls({ cert: 'cert.der', cwd: dir })).ok).toBe(true)
  })

  it.each<[string, () => void, string[]]>([
    ['a missing certificate', () => undefined, ['cert-unreadable']],
    [
      'a directory instead of a certificate',
      () => mkdirSync(join(dir, 'missing.crt'), { recursive: true }),
      ['cert-unreadable'],
    ],
  ])('reports %s (exit 1)', async (_name, setup, expected) => {
    setup()
    expect(kinds(await checkTls({ cert: 'missing.crt', cwd: dir }))).toEqual(expected)
    expect((await runCli(['tls', '--cert', 'missing.crt'], { cwd: dir })).code).toBe(1)
  })

  it('reports a file that holds no certificate and a key file that holds no key', async () => {
    const { cert } = valid
    const result = await checkTls({ cert: put('junk.crt', 'not a certificate\n'), cwd: dir })
    expect(kinds(result)).toEqual(['cert-invalid'])
    const badKey = await checkTls({ cert: put('g.crt', cert), key: put('junk.key', 'nope\n'), cwd: dir })
    expect(kinds(badKey)).toEqual(['key-invalid'])
    const noKey = await checkTls({ cert: 'g.crt', key: 'absent.key', cwd: dir })
    expect(kinds(noKey)).toEqual(['key-unreadable'])
  })

  it('exits 2 without --cert, with a bad --min-days or an unknown flag', async () => {
    for (const args of [
      ['tls'],
      ['tls', '--cert', 'x', '--min-days', 'soon'],
      ['tls', '--cert', 'x', '--bogus'],
      ['tls', '--cert', 'x', 'extra'],
    ]) {
      const r = await runCli(args, { cwd: dir })
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/^gatehouse-check: /)
    }
  })
})
