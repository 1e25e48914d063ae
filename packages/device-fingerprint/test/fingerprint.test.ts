import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { collectEvents } from '@gatehouse/testing'
import {
  computeFingerprint,
  deviceFingerprint,
  loadOrCreateDeviceFingerprint,
  pickMacAddress,
  resolveDeviceFingerprintConfig,
  type DeviceFingerprintOptions,
} from '@gatehouse/device-fingerprint'
import { cleanupDirs, iface, modeOf, tmpDir } from './helpers'

afterAll(cleanupDirs)

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

describe('pickMacAddress', () => {
  it.each<[string, Parameters<typeof pickMacAddress>[0], string | undefined]>([
    ['the first non-internal interface', { lo: [iface('00:00:00:00:00:00', true)], eth0: [iface('02:42:AC:11:00:02')], eth1: [iface('02:42:ac:11:00:03')] }, '02:42:ac:11:00:02'],
    ['skipping internal interfaces with a MAC', { lo0: [iface('aa:bb:cc:dd:ee:ff', true)], en0: [iface('a4:83:e7:01:02:03')] }, 'a4:83:e7:01:02:03'],
    ['skipping all-zero MACs (tunnels)', { tun0: [iface('00:00:00:00:00:00')], wlan0: [iface('3c:22:fb:00:00:01', false, 'IPv6')] }, '3c:22:fb:00:00:01'],
    ['nothing in a sandbox with loopback only', { lo: [iface('00:00:00:00:00:00', true)] }, undefined],
    ['nothing at all', {}, undefined],
  ])('picks %s', (_name, interfaces, expected) => {
    expect(pickMacAddress(interfaces)).toBe(expected)
  })

  it('finds the real host MAC when it has one', () => {
    const mac = pickMacAddress(os.networkInterfaces())
    if (mac !== undefined) expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
  })
})

describe('computeFingerprint', () => {
  it('is sha256(mac + hostname + salt), as the seed computes it', () => {
    expect(computeFingerprint('02:42:ac:11:00:02', 'gw-1', 'cliproxyapi++')).toBe(sha256('02:42:ac:11:00:02gw-1cliproxyapi++'))
    expect(computeFingerprint('02:42:ac:11:00:02', 'gw-1', 'gatehouse')).not.toBe(computeFingerprint('02:42:ac:11:00:02', 'gw-2', 'gatehouse'))
  })
})

describe('loadOrCreateDeviceFingerprint', () => {
  const config = (o: Partial<DeviceFingerprintOptions> & { dir: string }) => resolveDeviceFingerprintConfig(o)

  it('persists the MAC-based fingerprint 0600 in a 0700 directory and keeps it across restarts', () => {
    const parent = tmpDir()
    const dir = path.join(parent, 'auths')
    const { events, onEvent } = collectEvents()
    const first = loadOrCreateDeviceFingerprint(
      config({ dir, onEvent, networkInterfaces: () => ({ eth0: [iface('02:42:ac:11:00:02')] }), hostname: () => 'gw-1' }),
    )
    expect(first).toMatchObject({ created: true, source: 'mac', fingerprint: sha256('02:42:ac:11:00:02gw-1gatehouse') })
    expect(modeOf(dir)).toBe(0o700)
    expect(modeOf(first.file)).toBe(0o600)
    expect(JSON.parse(fs.readFileSync(first.file, 'utf8'))).toMatchObject({ v: 1, fingerprint: first.fingerprint, source: 'mac' })
    expect(fs.readFileSync(first.file, 'utf8')).not.toContain('02:42')
    expect(events).toEqual([
      expect.objectContaining({ event_type: 'config_change', result: 'device_fingerprint_created', details: expect.objectContaining({ source: 'mac' }) }),
    ])
    expect(JSON.stringify(events)).not.toContain(first.fingerprint)

    // A restart in a new container: another MAC, another host name. The id stays.
    const again = loadOrCreateDeviceFingerprint(
      config({ dir, onEvent, networkInterfaces: () => ({ eth0: [iface('02:42:ac:11:00:09')] }), hostname: () => 'gw-7' }),
    )
    expect(again).toMatchObject({ created: false, fingerprint: first.fingerprint, source: 'mac' })
    expect(events).toHaveLength(1)
  })

  it('falls back to a persisted random id where there is no MAC', () => {
    const noMac = { networkInterfaces: () => ({ lo: [iface('00:00:00:00:00:00', true)] }), hostname: () => 'sandbox' }
    const a = tmpDir()
    const b = tmpDir()
    const fa = loadOrCreateDeviceFingerprint(config({ dir: a, ...noMac }))
    const fb = loadOrCreateDeviceFingerprint(config({ dir: b, ...noMac }))
    expect(fa.source).toBe('random')
    expect(fa.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    expect(fa.fingerprint).not.toBe(fb.fingerprint)
    expect(loadOrCreateDeviceFingerprint(config({ dir: a, ...noMac })).fingerprint).toBe(fa.fingerprint)
  })

  it('works with the real interfaces and host name', () => {
    const dir = tmpDir()
    const r = loadOrCreateDeviceFingerprint(config({ dir }))
    expect(r.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    const mac = pickMacAddress(os.networkInterfaces())
    if (mac) expect(r.fingerprint).toBe(sha256(`${mac}${os.hostname()}gatehouse`))
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
    ['a bad fingerprint', (f) => fs.writeFileSync(f, JSON.stringify({ v: 1, fingerprint: 'xyz' }), { mode: 0o600 }), 'GH_DFP_INVALID_FILE', /does not hold a fingerprint/],
    ['a symlink', (f) => {
      const target = path.join(tmpDir(), 'elsewhere.json')
      fs.writeFileSync(target, JSON.stringify({ v: 1, fingerprint: 'a'.repeat(64) }))
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
    fs.writeFileSync(target, JSON.stringify({ v: 1, fingerprint: 'b'.repeat(64), source: 'random' }), { mode: 0o600 })
    fs.symlinkSync(target, path.join(dir, 'device-fingerprint.json'))
    expect(deviceFingerprint({ dir, allowInsecurePermissions: true }).fingerprint).toBe('b'.repeat(64))
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
    const results = Array.from({ length: 5 }, (_, i) =>
      loadOrCreateDeviceFingerprint(config({ dir, networkInterfaces: () => ({}), hostname: () => `h${i}` })),
    )
    expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1)
    expect(results.filter((r) => r.created)).toHaveLength(1)
  })
})
