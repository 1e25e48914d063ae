import { createHash, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import { join } from 'node:path'
import { GatehouseError, emitSecurityEvent, isGatehouseError } from '@gatehouse/core'
import { DeviceFingerprintErrorCodes } from './errors'
import type { DeviceFingerprintConfig, InterfaceMap } from './options'

const PKG = '@gatehouse/device-fingerprint'
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0
const FINGERPRINT = /^[0-9a-f]{64}$/
const currentUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined)
const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`

/** Where a fingerprint came from: a network interface's MAC address, or a random id (no MAC). */
export type FingerprintSource = 'mac' | 'random'

export interface DeviceFingerprintResult {
  /** 64 hex characters. */
  fingerprint: string
  source: FingerprintSource
  /** True when this call generated and persisted it. */
  created: boolean
  /** The persisted file. */
  file: string
}

/**
 * The MAC address of the first non-internal interface that has one (an interface listed with an
 * address is up), lower case, as the seed's `getMACAddress` picks it. Undefined in a container or
 * sandbox without one.
 */
export function pickMacAddress(interfaces: InterfaceMap): string | undefined {
  for (const addresses of Object.values(interfaces)) {
    for (const a of addresses ?? []) {
      if (a.internal) continue
      const mac = a.mac?.toLowerCase()
      if (!mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) || mac === '00:00:00:00:00:00') continue
      return mac
    }
  }
  return undefined
}

/** sha256(id + hostname + salt), hex: the seed's construction (id is the MAC address, or a random id). */
export function computeFingerprint(id: string, hostname: string, salt: string): string {
  return createHash('sha256').update(id).update(hostname).update(salt).digest('hex')
}

function insecure(message: string): GatehouseError {
  return new GatehouseError(DeviceFingerprintErrorCodes.GH_DFP_INSECURE_FILE, `${PKG}: ${message}`)
}

/** Create `dir` 0700 when missing; refuse a symlink or a foreign owner; tighten a loose mode. */
function secureDir(config: DeviceFingerprintConfig): void {
  let st: fs.Stats
  try {
    st = fs.lstatSync(config.dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    fs.mkdirSync(config.dir, { recursive: true, mode: 0o700 })
    fs.chmodSync(config.dir, 0o700)
    return
  }
  if (st.isSymbolicLink()) {
    if (!config.allowInsecurePermissions) throw insecure('dir: the directory is a symlink')
    st = fs.statSync(config.dir)
  }
  if (!st.isDirectory()) throw insecure('dir: the path is not a directory')
  const uid = currentUid()
  if (uid !== undefined && st.uid !== uid) {
    if (!config.allowInsecurePermissions) throw insecure(`dir: the directory is owned by uid ${st.uid}, not by this process (uid ${uid})`)
    return
  }
  if ((st.mode & 0o077) !== 0) {
    fs.chmodSync(config.dir, 0o700)
    config.logger.warn(`${PKG}: the directory had mode ${octal(st.mode)}; set to 0700`)
  }
}

function readExisting(config: DeviceFingerprintConfig, file: string): DeviceFingerprintResult | undefined {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | O_NONBLOCK | (config.allowInsecurePermissions ? 0 : O_NOFOLLOW))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP' || code === 'EMLINK') throw insecure('the fingerprint file is a symlink')
    throw err
  }
  let data: string
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) throw insecure('the fingerprint file is not a regular file')
    const uid = currentUid()
    if (uid !== undefined && st.uid !== uid && !config.allowInsecurePermissions) {
      throw insecure(`the fingerprint file is owned by uid ${st.uid}, not by this process (uid ${uid})`)
    }
    if ((st.mode & 0o077) !== 0 && (uid === undefined || st.uid === uid)) {
      fs.fchmodSync(fd, 0o600)
      config.logger.warn(`${PKG}: the fingerprint file had mode ${octal(st.mode)}; set to 0600`)
    }
    if (st.size > 4096) throw invalidFile('it is too large')
    data = fs.readFileSync(fd, 'utf8')
  } finally {
    fs.closeSync(fd)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(data)
  } catch {
    throw invalidFile('it is not valid JSON')
  }
  const o = parsed as { v?: unknown; fingerprint?: unknown; source?: unknown }
  if (typeof o !== 'object' || o === null || o.v !== 1 || typeof o.fingerprint !== 'string' || !FINGERPRINT.test(o.fingerprint)) {
    throw invalidFile('it does not hold a fingerprint')
  }
  return { fingerprint: o.fingerprint, source: o.source === 'random' ? 'random' : 'mac', created: false, file }
}

function invalidFile(why: string): GatehouseError {
  return new GatehouseError(
    DeviceFingerprintErrorCodes.GH_DFP_INVALID_FILE,
    `${PKG}: the persisted fingerprint file is invalid (${why}); delete it to generate a new fingerprint`,
  )
}

/**
 * Create the file only if absent, atomically: write a 0600 temporary file, fsync it, then
 * hard-link it into place (fails if another process got there first), fsync the directory.
 * Returns false when the file already existed.
 */
function createExclusive(dir: string, name: string, data: string): boolean {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`)
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600)
  try {
    fs.writeSync(fd, data)
    fs.fchmodSync(fd, 0o600)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  try {
    fs.linkSync(tmp, join(dir, name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  try {
    const dfd = fs.openSync(dir, fs.constants.O_RDONLY)
    try {
      fs.fsyncSync(dfd)
    } finally {
      fs.closeSync(dfd)
    }
  } catch {
    // platforms that cannot fsync a directory
  }
  return true
}

/**
 * The device fingerprint: read from `dir/fileName` when persisted, otherwise generated —
 * sha256(MAC of the first up, non-internal interface + hostname + salt), or sha256(random id +
 * hostname + salt) where there is no MAC — and persisted 0600 so it stays stable across restarts
 * (and across a container's changing MAC). Throws GatehouseError GH_DFP_*.
 */
export function loadOrCreateDeviceFingerprint(config: DeviceFingerprintConfig): DeviceFingerprintResult {
  try {
    secureDir(config)
    const file = join(config.dir, config.fileName)
    const existing = readExisting(config, file)
    if (existing) return existing
    const mac = pickMacAddress((config.networkInterfaces ?? os.networkInterfaces)())
    const hostname = (config.hostname ?? os.hostname)()
    const source: FingerprintSource = mac ? 'mac' : 'random'
    const fingerprint = computeFingerprint(mac ?? randomBytes(32).toString('hex'), hostname, config.salt)
    const body = `${JSON.stringify({ v: 1, fingerprint, source, created_at: new Date().toISOString() })}\n`
    if (!createExclusive(config.dir, config.fileName, body)) {
      // Another process created it between our read and our write: theirs wins.
      const raced = readExisting(config, file)
      if (raced) return raced
    }
    config.logger.info(`${PKG}: device fingerprint created`, { source })
    emitSecurityEvent(config.onEvent, {
      event_type: 'config_change',
      result: 'device_fingerprint_created',
      details: { action: 'device_fingerprint_created', source, header: config.header },
    })
    return { fingerprint, source, created: true, file }
  } catch (err) {
    if (isGatehouseError(err)) throw err
    throw new GatehouseError(
      DeviceFingerprintErrorCodes.GH_DFP_WRITE_FAILED,
      `${PKG}: the fingerprint file cannot be read or written (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      500,
      { cause: err },
    )
  }
}
