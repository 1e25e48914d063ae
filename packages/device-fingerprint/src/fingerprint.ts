import { createHmac, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { GatehouseError, emitSecurityEvent, isGatehouseError } from '@gatehouse/core'
import { DeviceFingerprintErrorCodes } from './errors'
import type { DeviceFingerprintConfig } from './options'

const PKG = '@gatehouse/device-fingerprint'
const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0
const HEX64 = /^[0-9a-f]{64}$/
const currentUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined)
const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`

export interface DeviceFingerprintResult {
  /** 64 hex characters. */
  fingerprint: string
  /** True when this call generated and persisted the install's secret. */
  created: boolean
  /** The persisted secret's file. */
  file: string
}

/**
 * The fingerprint of an install: HMAC-SHA256 under the install's secret (32 random bytes, kept
 * 0600 in the auth dir) of a fixed label and the salt, in hex. Nothing of the host goes in: the
 * provider can tell requests of one install apart from another's, but nobody can search the value
 * back to a MAC address or host name, and a rotated secret gives an unrelated id.
 */
export function deriveFingerprint(secret: Buffer, salt: string): string {
  return createHmac('sha256', secret).update('gatehouse device fingerprint v2\0').update(salt).digest('hex')
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

interface Persisted {
  /** The install secret; undefined for a v1 file (a fingerprint derived from host identifiers). */
  secret: Buffer | undefined
}

function readExisting(config: DeviceFingerprintConfig, file: string): Persisted | undefined {
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
  const o = parsed as { v?: unknown; secret?: unknown; fingerprint?: unknown }
  if (typeof o === 'object' && o !== null && o.v === 2 && typeof o.secret === 'string' && HEX64.test(o.secret)) {
    return { secret: Buffer.from(o.secret, 'hex') }
  }
  if (typeof o === 'object' && o !== null && o.v === 1 && typeof o.fingerprint === 'string' && HEX64.test(o.fingerprint)) {
    return { secret: undefined }
  }
  throw invalidFile('it does not hold a fingerprint secret')
}

function invalidFile(why: string): GatehouseError {
  return new GatehouseError(
    DeviceFingerprintErrorCodes.GH_DFP_INVALID_FILE,
    `${PKG}: the persisted fingerprint file is invalid (${why}); delete it, or run \`gatehouse fingerprint rotate\`, to generate a new fingerprint`,
  )
}

/** A 0600 temporary file beside `name` holding `data`, fsynced; returns its path. */
function writeTemp(dir: string, name: string, data: string): string {
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`)
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600)
  try {
    fs.writeSync(fd, data)
    fs.fchmodSync(fd, 0o600)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  return tmp
}

function fsyncDir(dir: string): void {
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
}

/**
 * Create the file only if absent, atomically: a temporary file hard-linked into place (fails if
 * another process got there first), then the directory fsynced. Returns false when it existed.
 */
function createExclusive(dir: string, name: string, data: string): boolean {
  const tmp = writeTemp(dir, name, data)
  try {
    fs.linkSync(tmp, join(dir, name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  fsyncDir(dir)
  return true
}

/** Replace the file atomically: a temporary file renamed over it (a link is replaced, not followed). */
function replaceAtomic(dir: string, name: string, data: string): void {
  const tmp = writeTemp(dir, name, data)
  try {
    fs.renameSync(tmp, join(dir, name))
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
  fsyncDir(dir)
}

const newSecretFile = (): { secret: Buffer; body: string } => {
  const secret = randomBytes(32)
  return { secret, body: `${JSON.stringify({ v: 2, secret: secret.toString('hex'), created_at: new Date().toISOString() })}\n` }
}

const wrapIoError = (err: unknown): GatehouseError =>
  isGatehouseError(err)
    ? err
    : new GatehouseError(
        DeviceFingerprintErrorCodes.GH_DFP_WRITE_FAILED,
        `${PKG}: the fingerprint file cannot be read or written (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        500,
        { cause: err },
      )

/**
 * The device fingerprint, derived from the install's secret in `dir/fileName`: read when
 * persisted, otherwise generated (32 random bytes) and persisted 0600 so the fingerprint stays
 * stable across restarts. A v1 file (a fingerprint hashed from the MAC address and host name) is
 * replaced by a secret: the old value could be searched back to the host. Throws GatehouseError
 * GH_DFP_*.
 */
export function loadOrCreateDeviceFingerprint(config: DeviceFingerprintConfig): DeviceFingerprintResult {
  try {
    secureDir(config)
    const file = join(config.dir, config.fileName)
    const existing = readExisting(config, file)
    if (existing?.secret) return { fingerprint: deriveFingerprint(existing.secret, config.salt), created: false, file }
    const { secret, body } = newSecretFile()
    if (existing) {
      replaceAtomic(config.dir, config.fileName, body)
      config.logger.warn(`${PKG}: replaced a fingerprint derived from the host's MAC address and name with one derived from a per-install secret; providers see a new device id`)
    } else if (!createExclusive(config.dir, config.fileName, body)) {
      // Another process created it between our read and our write: theirs wins.
      const raced = readExisting(config, file)
      if (!raced?.secret) throw invalidFile('it does not hold a fingerprint secret')
      return { fingerprint: deriveFingerprint(raced.secret, config.salt), created: false, file }
    }
    config.logger.info(`${PKG}: device fingerprint created`)
    emitSecurityEvent(config.onEvent, {
      event_type: 'config_change',
      result: 'device_fingerprint_created',
      details: { action: 'device_fingerprint_created', header: config.header, ...(existing ? { replaced: 'host-derived fingerprint' } : {}) },
    })
    return { fingerprint: deriveFingerprint(secret, config.salt), created: true, file }
  } catch (err) {
    throw wrapIoError(err)
  }
}

/**
 * A new install secret, so the next start sends an unrelated fingerprint (`gatehouse fingerprint
 * rotate`). Replaces the file atomically; an unreadable or invalid file is replaced too, a
 * symlinked or foreign one is refused. A running gateway keeps its fingerprint until restarted.
 */
export function rotateDeviceFingerprint(config: DeviceFingerprintConfig): DeviceFingerprintResult {
  try {
    secureDir(config)
    const file = join(config.dir, config.fileName)
    try {
      readExisting(config, file)
    } catch (err) {
      if (!(isGatehouseError(err) && err.code === DeviceFingerprintErrorCodes.GH_DFP_INVALID_FILE)) throw err
    }
    const { secret, body } = newSecretFile()
    replaceAtomic(config.dir, config.fileName, body)
    config.logger.info(`${PKG}: device fingerprint rotated`)
    emitSecurityEvent(config.onEvent, {
      event_type: 'config_change',
      result: 'device_fingerprint_rotated',
      details: { action: 'device_fingerprint_rotated', header: config.header },
    })
    return { fingerprint: deriveFingerprint(secret, config.salt), created: true, file }
  } catch (err) {
    throw wrapIoError(err)
  }
}
