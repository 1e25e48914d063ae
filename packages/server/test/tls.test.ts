import https from 'node:https'
import tls from 'node:tls'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { generateCertificate, waitFor } from '@gatehouse/testing'
import type { ConfigError} from '@gatehouse/server';
import { loadConfig } from '@gatehouse/server'
import { startHarness, type Harness } from './helpers'

const handshake = (port: number, opts: tls.ConnectionOptions): Promise<{ fingerprint: string; protocol: string | null; cipher: string }> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const out = { fingerprint: socket.getPeerX509Certificate()!.fingerprint256, protocol: socket.getProtocol(), cipher: socket.getCipher().name }
      socket.end()
      resolve(out)
    })
    socket.on('error', reject)
  })

describe('TLS', () => {
  let h: Harness
  let dir: string
  const first = generateCertificate({ commonName: 'first.gatehouse.test' })
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-tls-'))
    writeFileSync(join(dir, 'server.crt'), first.cert)
    writeFileSync(join(dir, 'server.key'), first.key, { mode: 0o600 })
    h = await startHarness((c) => {
      c.server.tls = {
        enabled: true,
        cert_file: join(dir, 'server.crt'),
        key_file: join(dir, 'server.key'),
        min_version: '1.2',
        cipher_suites: ['TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', 'TLS_AES_256_GCM_SHA384'],
      }
    })
  })
  afterAll(async () => {
    await h.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const port = (): number => Number(new URL(h.url).port)

  it('serves HTTPS with the configured certificate', async () => {
    expect(h.url).toMatch(/^https:/)
    const got = await handshake(port(), {})
    expect(got.fingerprint).toBe(new X509Certificate(first.cert).fingerprint256)
    expect(got.protocol).toBe('TLSv1.3')
  })

  it('refuses TLS 1.1 under min_version 1.2 and accepts 1.2', async () => {
    await expect(handshake(port(), { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).rejects.toThrow()
    const ok = await handshake(port(), { maxVersion: 'TLSv1.2' })
    expect(ok.protocol).toBe('TLSv1.2')
    expect(ok.cipher).toBe('ECDHE-RSA-AES256-GCM-SHA384')
  })

  it('refuses a TLS 1.2 cipher outside the list', async () => {
    await expect(handshake(port(), { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).rejects.toThrow()
  })

  it('serves a replaced certificate on the next handshake without dropping an open connection', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false, maxCachedSessions: 0 })
    const get = (): Promise<{ status: number; fingerprint: string | undefined; socket: unknown }> =>
      new Promise((resolve, reject) => {
        https
          .get(`${h.url}/healthz`, { agent }, (res) => {
            const socket = res.socket as tls.TLSSocket
            // Only the response that made the handshake can read the peer certificate.
            const fingerprint = socket.getPeerX509Certificate()?.fingerprint256
            res.resume()
            res.on('end', () => resolve({ status: res.statusCode!, fingerprint, socket }))
          })
          .on('error', reject)
      })
    const before = await get()
    const second = generateCertificate({ commonName: 'second.gatehouse.test' })
    writeFileSync(join(dir, 'server.key.new'), second.key, { mode: 0o600 })
    writeFileSync(join(dir, 'server.crt.new'), second.cert)
    renameSync(join(dir, 'server.key.new'), join(dir, 'server.key'))
    renameSync(join(dir, 'server.crt.new'), join(dir, 'server.crt'))
    const want = new X509Certificate(second.cert).fingerprint256
    let now = ''
    await waitFor(async () => (now = (await handshake(port(), {})).fingerprint) === want, 5000, { every: 100, what: 'the renewed certificate' })
    expect(now).toBe(want)
    const again = await get() // the kept-alive connection from before still works
    expect(again.status).toBe(200)
    expect(before.fingerprint).toBe(new X509Certificate(first.cert).fingerprint256)
    expect(again.socket).toBe(before.socket) // same connection, so still the first certificate
    agent.destroy()
  })
})

describe('TLS config', () => {
  it('names an unknown cipher suite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-tlscfg-'))
    const file = join(dir, 'c.yaml')
    writeFileSync(file, 'server:\n  tls: { enabled: true, cert_file: a, key_file: b, cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_RSA_WITH_RC4_128_MD5] }\n')
    let errors: string[] = []
    try {
      loadConfig({ file, env: {}, cwd: dir })
    } catch (e) {
      errors = (e as ConfigError).errors
    }
    expect(errors).toEqual([
      'server.tls.cert_file: no such file "a" (relative paths are read from the directory the gateway starts in)',
      'server.tls.key_file: no such file "b" (relative paths are read from the directory the gateway starts in)',
      'server.tls.cipher_suites.1: unknown cipher suite "TLS_RSA_WITH_RC4_128_MD5"; use IANA names such as "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"',
    ])
    rmSync(dir, { recursive: true, force: true })
  })
})
