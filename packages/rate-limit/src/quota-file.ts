import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmodSync, readFileSync, renameSync, statSync } from 'node:fs'
import { open, rename, rm, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { GatehouseConfigError } from '@gatehouse/core'
import { isPeriod, type QuotaPeriod } from './period'

export interface QuotaEntry {
  period: QuotaPeriod
  used: number
}

/**
 * What the quota file holds: `{"version":1,"quotas":{"<namespace>\u0000<key>":{"period":202602,"used":123}},"hmac":"…"}`.
 * `exhausted` (a period) says that every counter of that period which the file does not list counts
 * as spent: it is written after a file failed its integrity check. `hmac` is HMAC-SHA256 (base64url)
 * over the JSON of the other members, in the order written, under `quotaFileKey`.
 */
interface QuotaFileContent {
  version: 1
  quotas: Record<string, QuotaEntry>
  exhausted?: QuotaPeriod
}

/** Computes the file's HMAC; the key stays inside this closure, never on an object that is logged. */
export type QuotaFileSigner = (content: string) => string

/** HMAC-SHA256 under `key`, domain-separated so the MAC of a quota file means nothing elsewhere. */
export function quotaFileSigner(key: Uint8Array): QuotaFileSigner {
  const k = Buffer.from(key)
  return (content) => createHmac('sha256', k).update('gatehouse quota file v1\n').update(content).digest('base64url')
}

/** What loading found. */
export interface LoadedQuotas {
  quotas: Map<string, QuotaEntry>
  /** Counters of this period not in `quotas` count as spent (see QuotaFileContent.exhausted). */
  exhausted: QuotaPeriod | undefined
  /**
   * `signed`: the HMAC matched. `unsigned`: no key given, or a file from before integrity
   * protection (with a key: re-written signed at once). `tampered`: the HMAC did not match; the
   * file was moved to `movedTo` and nothing in it was used. `missing`: no file yet.
   */
  status: 'signed' | 'unsigned' | 'tampered' | 'missing'
  movedTo?: string
}

const isEntry = (v: unknown): v is QuotaEntry =>
  typeof v === 'object' &&
  v !== null &&
  isPeriod((v as QuotaEntry).period) &&
  typeof (v as QuotaEntry).used === 'number' &&
  Number.isFinite((v as QuotaEntry).used) &&
  (v as QuotaEntry).used >= 0

/** The file's text, or undefined when there is none; a file others can write is refused. */
function readQuotaText(file: string, warn: (msg: string) => void): string | undefined {
  try {
    const st = statSync(file)
    if ((st.mode & 0o022) !== 0) {
      throw new GatehouseConfigError(
        'GH_RL_QUOTA_FILE_INSECURE',
        `@gatehouse/rate-limit: quotaFile ${JSON.stringify(file)} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`,
      )
    }
    if ((st.mode & 0o077) !== 0) {
      warn(`quota file mode ${(st.mode & 0o777).toString(8)} tightened to 600`)
      chmodSync(file, 0o600)
    }
    return readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Whether `mac` is the HMAC of `content` (compared in constant time). */
function macMatches(sign: QuotaFileSigner, content: string, mac: unknown): boolean {
  if (typeof mac !== 'string') return false
  const want = Buffer.from(sign(content))
  const got = Buffer.from(mac)
  return got.length === want.length && timingSafeEqual(got, want)
}

/**
 * Read the quota file at start. A missing file is an empty one. A file others can write is refused
 * (anyone who can edit it can hand out quota); one others can only read is tightened to 0600.
 * A file that is not ours is refused rather than silently reset, so a corrupt file never grants a
 * fresh month of quota. With `sign` (a key), a file whose HMAC does not match is not used: it is
 * moved aside and reported as `tampered` (the store then counts the month as spent); a file with
 * no HMAC is one from before integrity protection and is reported as `unsigned`. A signed file
 * without a key is refused: it cannot be checked.
 */
export function loadQuotaFile(file: string, warn: (msg: string) => void, sign?: QuotaFileSigner): LoadedQuotas {
  const text = readQuotaText(file, warn)
  if (text === undefined) return { quotas: new Map(), exhausted: undefined, status: 'missing' }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalid(file, 'is not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid(file, 'is not a Gatehouse quota file (version 1)')
  }
  const { hmac, ...content } = parsed as Partial<QuotaFileContent> & { hmac?: unknown }
  if (content.version !== 1 || typeof content.quotas !== 'object' || content.quotas === null) {
    throw invalid(file, 'is not a Gatehouse quota file (version 1)')
  }
  if (hmac !== undefined && !sign) throw invalid(file, 'is signed, but no quotaFileKey was given to check it')
  if (hmac !== undefined && sign && !macMatches(sign, JSON.stringify(content), hmac)) {
    // Kept for inspection; where it cannot be moved, the signed file written next replaces it.
    const movedTo = `${file}.tampered-${Date.now()}`
    try {
      renameSync(file, movedTo)
    } catch {
      return { quotas: new Map(), exhausted: undefined, status: 'tampered' }
    }
    return { quotas: new Map(), exhausted: undefined, status: 'tampered', movedTo }
  }
  const out = new Map<string, QuotaEntry>()
  for (const [key, entry] of Object.entries(content.quotas)) {
    if (!isEntry(entry)) throw invalid(file, `has a bad entry for ${JSON.stringify(key)}`)
    out.set(key, { period: entry.period, used: entry.used })
  }
  if (content.exhausted !== undefined && !isPeriod(content.exhausted)) throw invalid(file, 'has a bad "exhausted" period')
  return { quotas: out, exhausted: content.exhausted, status: hmac === undefined ? 'unsigned' : 'signed' }
}

const invalid = (file: string, what: string): GatehouseConfigError =>
  new GatehouseConfigError(
    'GH_RL_QUOTA_FILE_INVALID',
    `@gatehouse/rate-limit: quotaFile ${JSON.stringify(file)} ${what}; move it away to start with empty quotas`,
  )

/** Write the quota file atomically (signed when a key is given): a 0600 temp file beside it, fsync, rename over, fsync the directory. */
export async function writeQuotaFile(
  file: string,
  quotas: ReadonlyMap<string, QuotaEntry>,
  exhausted: QuotaPeriod | undefined,
  sign: QuotaFileSigner | undefined,
): Promise<void> {
  const content: QuotaFileContent = { version: 1, quotas: Object.fromEntries(quotas) }
  if (exhausted !== undefined) content.exhausted = exhausted
  const json = JSON.stringify(content)
  const text = sign ? `${json.slice(0, -1)},"hmac":${JSON.stringify(sign(json))}}` : json
  const dir = dirname(file)
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await chmod(tmp, 0o600) // a umask cannot loosen it, but an inherited ACL default could
    await rename(tmp, file)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  try {
    const d = await open(dir, 'r')
    try {
      await d.sync()
    } finally {
      await d.close()
    }
  } catch {
    // some filesystems cannot fsync a directory; the rename itself is still atomic
  }
}
