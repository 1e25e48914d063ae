import { randomBytes } from 'node:crypto'
import { chmodSync, readFileSync, statSync } from 'node:fs'
import { open, rename, rm, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { GatehouseConfigError } from '@gatehouse/core'
import { isPeriod, type QuotaPeriod } from './period'

export interface QuotaEntry {
  period: QuotaPeriod
  used: number
}

/** What the quota file holds: `{"version":1,"quotas":{"<namespace>\u0000<key>":{"period":202602,"used":123}}}`. */
interface QuotaFileShape {
  version: 1
  quotas: Record<string, QuotaEntry>
}

const isEntry = (v: unknown): v is QuotaEntry =>
  typeof v === 'object' &&
  v !== null &&
  isPeriod((v as QuotaEntry).period) &&
  typeof (v as QuotaEntry).used === 'number' &&
  Number.isFinite((v as QuotaEntry).used) &&
  (v as QuotaEntry).used >= 0

/**
 * Read the quota file at start. A missing file is an empty one. A file others can write is refused
 * (anyone who can edit it can hand out quota); one others can only read is tightened to 0600.
 * A file that is not ours is refused rather than silently reset, so a corrupt file never grants a
 * fresh month of quota.
 */
export function loadQuotaFile(file: string, warn: (msg: string) => void): Map<string, QuotaEntry> {
  let text: string
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
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map()
    throw err
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalid(file, 'is not JSON')
  }
  const shape = parsed as Partial<QuotaFileShape>
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    shape.version !== 1 ||
    typeof shape.quotas !== 'object' ||
    shape.quotas === null
  ) {
    throw invalid(file, 'is not a Gatehouse quota file (version 1)')
  }
  const out = new Map<string, QuotaEntry>()
  for (const [key, entry] of Object.entries(shape.quotas)) {
    if (!isEntry(entry)) throw invalid(file, `has a bad entry for ${JSON.stringify(key)}`)
    out.set(key, { period: entry.period, used: entry.used })
  }
  return out
}

const invalid = (file: string, what: string): GatehouseConfigError =>
  new GatehouseConfigError(
    'GH_RL_QUOTA_FILE_INVALID',
    `@gatehouse/rate-limit: quotaFile ${JSON.stringify(file)} ${what}; move it away to start with empty quotas`,
  )

/** Write the quota file atomically: a 0600 temp file beside it, fsync, rename over, fsync the directory. */
export async function writeQuotaFile(file: string, quotas: ReadonlyMap<string, QuotaEntry>): Promise<void> {
  const body: QuotaFileShape = { version: 1, quotas: Object.fromEntries(quotas) }
  const dir = dirname(file)
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(JSON.stringify(body))
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
