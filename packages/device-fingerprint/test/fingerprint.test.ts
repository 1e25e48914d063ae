import { createHash, createHmac, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { collectEvents } from '@gatehouse/testing'
import {
  deriveFingerprint,
  deviceFingerprint,
  loadOrCreateDeviceFingerprint,
  resolveDeviceFingerprintConfig,
  rotateDeviceFingerprint,
  type DeviceFingerprintOptions,
} from '@gatehouse/device-fingerprint'
import { cleanupDirs, modeOf, tmpDir } from './helpers'

afterAll(cleanupDirs)

describe('deriveFingerprint', () => {
  it('is HMAC-SHA256 under the install secret, and changes with the secret and the salt', () => {
    const secret = randomBytes(32)
    expect(deriveFingerprint(secret, 'gatehouse')).toBe(createHmac('sha256', secret).update('gatehouse device fingerprint v2\0gatehouse').digest('hex'))
    expect(deriveFingerprint(secret, 'gatehouse')).not.toBe(deriveFingerprint(randomBytes(32), 'gatehouse'))
    expect(deriveFingerprint(secret, 'gatehouse')).not.toBe(deriveFingerprint(secret, 'other-product'))
  })
})

describe('loadOrCreateDeviceFingerprint', () => {
  const config = (o: Partial<DeviceFingerprintOptions> & { dir: string }) => resolveDeviceFingerprintConfig(o)
  const hostIds = (): string[] => {
    const ids = [os.hostname()]
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (a.mac && a.mac !== '00:00:00:00:00:00') ids.push(a.mac)
    return ids
  }

  it('creates a per-install secret 0600 in a 0700 directory on first start and keeps the fingerprint across restarts', () => {
    const parent = tmpDir()
    const dir = path.join(parent, 'auths')
    const { events, onEvent } = collectEvents()
    const first = loadOrCreateDeviceFingerprint(config({ dir, onEvent }))
    expect(first).toMatchObject({ created: true, fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect(modeOf(dir)).toBe(0o700)
    expect(modeOf(first.file)).toBe(0o600)
    const stored = JSON.parse(fs.readFileSync(first.file, 'utf8')) as { v: number; secret: string }
    expect(stored).toMatchObject({ v: 2, secret: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect(first.fingerprint).toBe(deriveFingerprint(Buffer.from(stored.secret, 'hex'), 'gatehouse'))
    expect(events).toEqual([expect.objectContaining({ event_type: 'config_change', result: 'device_fingerprint_created' })])
    expect(JSON.stringify(events)).not.toContain(first.fingerprint)
    expect(JSON.stringify(events)).not.toContain(stored.secret)

    const again = loadOrCreateDeviceFingerprint(config({ dir, onEvent }))
    expect(again).toMatchObject({ created: false, fingerprint: first.fingerprint })
    expect(events).toHaveLength(1)
  })

  it('derives nothing from the host: two installs on one host differ, and neither is a hash of its MAC or name', () => {
    const a = loadOrCreateDeviceFingerprint(config({ dir: tmpDir() }))
    const b = loadOrCreateDeviceFingerprint(config({ dir: tmpDir() }))
    expect(a.fingerprint).not.toBe(b.fingerprint)
    const ids = hostIds()
    const candidates = new Set<string>()
    for (const salt of ['gatehouse', 'cliproxyapi++', '']) {
      for (const id of ids) for (const name of [os.hostname(), '']) candidates.add(createHash('sha256').update(`${id}${name}${salt}`).digest('hex'))
    }
    expect(candidates.has(a.fingerprint)).toBe(false)
    for (const id of ids) expect(fs.readFileSync(a.file, 'utf8')).not.toContain(id)
  })

  it('replaces a v1 fingerprint (hashed from the MAC and host name) with a secret, once', () => {
    const dir = tmpDir()
    const legacy = createHash('sha256').update(`02:42:ac:11:00:02${os.hostname()}gatehouse`).digest('hex')
    fs.writeFileSync(path.join(dir, 'device-fingerprint.json'), JSON.stringify({ v: 1, fingerprint: legacy, source: 'mac' }), { mode: 0o600 })
    const warnings: string[] = []
    const logger = { error: () => undefined, warn: (m: string) => void warnings.push(m), info: () => undefined, debug: () => undefined }
    const { events, onEvent } = collectEvents()
    const r = loadOrCreateDeviceFingerprint(config({ dir, onEvent, logger }))
    expect(r.created).toBe(true)
    expect(r.fingerprint).not.toBe(legacy)
    expect(fs.readFileSync(r.file, 'utf8')).not.toContain(legacy)
    expect(modeOf(r.file)).toBe(0o600)
    expect(events).toEqual([expect.objectContaining({ result: 'device_fingerprint_created', details: expect.objectContaining({ replaced: 'host-derived fingerprint' }) })])
    expect(warnings.join('\n')).toContain('per-install secret')
    expect(loadOrCreateDeviceFingerprint(config({ dir })).fingerprint).toBe(r.fingerprint)
  })

  it('tightens a loosened file mode', () => {
    const dir = tmpDir()
    const r = loadOrCreateDeviceFingerprint(config({ dir }))
    fs.chmodSync(r.file, 0o644)
    expect(loadOrCreateDeviceFingerprint(config({ dir })).fingerprint).toBe(r.fingerprint)
    expect(modeOf(r.file)).toBe(0o600)
  })

  it.each<[string, (file: string) => void, string, RegExp]>([
    ['corrupt JSON', (f) => fs.writeFileSync(f, '{"v":1,', { mode: 0o600 }), 'GH_DFP_INVALID_FILE', /not valid JSON.*delete it/],
    ['a bad secret', (f) => fs.writeFileSync(f, JSON.stringify({ v: 2, secret: 'xyz' }), { mode: 0o600 }), 'GH_DFP_INVALID_FILE', /does not hold a fingerprint secret/],
    ['a symlink', (f) => {
      const target = path.join(tmpDir(), 'elsewhere.json')
      fs.writeFileSync(target, JSON.stringify({ v: 2, secret: 'a'.repeat(64) }))
      fs.symlinkSync(target, f)
    }, 'GH_DFP_INSECURE_FILE', /symlink/],
    ['a directory', (f) => fs.mkdirSync(f), 'GH_DFP_INSECURE_FILE', /not a regular file/],
  ])('refuses a persisted file that is %s, and never overwrites it', (_name, prepare, code, message) => {
    const dir = tmpDir()
    const file = path.join(dir, 'device-fingerprint.json')
    prepare(file)
    const before = fs.lstatSync(file).isFile() ? fs.readFileSync(file, 'utf8') : undefined
    expect(() => deviceFingerprint({ dir })).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }))
    if (before !== undefined) expect(fs.readFileSync(file, 'utf8')).toBe(before)
  })

  it('accepts a symlinked file with allowInsecurePermissions', () => {
    const dir = tmpDir()
    const target = path.join(tmpDir(), 'elsewhere.json')
    fs.writeFileSync(target, JSON.stringify({ v: 2, secret: 'b'.repeat(64) }), { mode: 0o600 })
    fs.symlinkSync(target, path.join(dir, 'device-fingerprint.json'))
    expect(deviceFingerprint({ dir, allowInsecurePermissions: true }).fingerprint).toBe(deriveFingerprint(Buffer.from('b'.repeat(64), 'hex'), 'gatehouse'))
  })

  it('refuses a symlinked directory', () => {
    const link = path.join(tmpDir(), 'auths')
    fs.symlinkSync(tmpDir(), link)
    expect(() => deviceFingerprint({ dir: link })).toThrow(expect.objectContaining({ code: 'GH_DFP_INSECURE_FILE' }))
  })

  ;(process.getuid?.() === 0 ? it : it.skip)('refuses a file owned by another user', () => {
    const dir = tmpDir()
    const r = loadOrCreateDeviceFingerprint(config({ dir }))
    fs.chownSync(r.file, 65534, 65534)
    expect(() => deviceFingerprint({ dir })).toThrow(expect.objectContaining({ code: 'GH_DFP_INSECURE_FILE', message: expect.stringMatching(/uid 65534/) }))
  })

  it('reports an unwritable directory as GH_DFP_WRITE_FAILED', () => {
    const file = path.join(tmpDir(), 'not-a-dir')
    fs.writeFileSync(file, 'x')
    expect(() => deviceFingerprint({ dir: path.join(file, 'sub') })).toThrow(expect.objectContaining({ code: 'GH_DFP_WRITE_FAILED' }))
  })

  it('keeps the first fingerprint when two instances start at once', () => {
    const dir = tmpDir()
    const results = Array.from({ length: 5 }, () => loadOrCreateDeviceFingerprint(config({ dir })))
    expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1)
    expect(results.filter((r) => r.created)).toHaveLength(1)
  })
})

describe('rotateDeviceFingerprint (gatehouse fingerprint rotate)', () => {
  const config = (o: Partial<DeviceFingerprintOptions> & { dir: string }) => resolveDeviceFingerprintConfig(o)

  it('replaces the secret: the next start sends an unrelated fingerprint, stable again afterwards', () => {
    const dir = tmpDir()
    const before = loadOrCreateDeviceFingerprint(config({ dir }))
    const { events, onEvent } = collectEvents()
    const rotated = rotateDeviceFingerprint(config({ dir, onEvent }))
    expect(rotated.fingerprint).not.toBe(before.fingerprint)
    expect(modeOf(rotated.file)).toBe(0o600)
    expect(loadOrCreateDeviceFingerprint(config({ dir })).fingerprint).toBe(rotated.fingerprint)
    expect(events).toEqual([expect.objectContaining({ event_type: 'config_change', result: 'device_fingerprint_rotated' })])
    expect(fs.readdirSync(dir)).toEqual(['device-fingerprint.json'])
  })

  it('replaces an invalid file, and refuses a symlinked one without touching its target', () => {
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, 'device-fingerprint.json'), '{"v":2,', { mode: 0o600 })
    expect(rotateDeviceFingerprint(config({ dir })).fingerprint).toMatch(/^[0-9a-f]{64}$/)
    const linked = tmpDir()
    const target = path.join(tmpDir(), 'elsewhere.json')
    fs.writeFileSync(target, 'keep', { mode: 0o600 })
    fs.symlinkSync(target, path.join(linked, 'device-fingerprint.json'))
    expect(() => rotateDeviceFingerprint(config({ dir: linked }))).toThrow(expect.objectContaining({ code: 'GH_DFP_INSECURE_FILE' }))
    expect(fs.readFileSync(target, 'utf8')).toBe('keep')
  })
})
