import * as fs from 'node:fs'
import type { NetworkInterfaceInfo } from 'node:os'
import * as os from 'node:os'
import * as path from 'node:path'

const dirs: string[] = []
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-dfp-'))
  dirs.push(d)
  return d
}
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
}

export const modeOf = (p: string): number => fs.statSync(p).mode & 0o777

/** One interface entry in the shape os.networkInterfaces() returns. */
export function iface(mac: string, internal = false, family: 'IPv4' | 'IPv6' = 'IPv4'): NetworkInterfaceInfo {
  return family === 'IPv4'
    ? { address: internal ? '127.0.0.1' : '10.0.0.5', netmask: '255.0.0.0', family, mac, internal, cidr: null }
    : { address: internal ? '::1' : 'fe80::1', netmask: 'ffff::', family, mac, internal, cidr: null, scopeid: 0 }
}
