import { statSync, unlinkSync } from 'node:fs'
import { basename } from 'node:path'
import type { Logger } from '@gatehouse/core'
import { errCode } from './active-file'
import { firstChainedLineOf, rotatedFiles } from './files'

const PKG = '@gatehouse/audit-log'

/** How many rotated files are kept, and for how long. 0: no limit. */
export interface RetentionPolicy {
  maxFiles: number
  maxAgeMs: number
}

/** Where the chain stood just before the oldest line that is kept. */
export interface RetentionBoundary {
  seq: number
  hash: string
}

export interface RetentionPlan {
  /** The rotated files to delete: always the oldest ones, in chain order. */
  expired: string[]
  /** The oldest rotated file that is kept, when one is. */
  oldestKept: string | undefined
}

const mtimeOf = (path: string): number | undefined => {
  try {
    return statSync(path).mtimeMs
  } catch {
    return undefined
  }
}

/**
 * The rotated files of `active` that retention removes: beyond the newest `maxFiles`, or whose
 * last write is older than `maxAgeMs`. Only a run of the oldest files is ever chosen, so what is
 * kept stays one unbroken chain.
 */
export function planRetention(active: string, policy: RetentionPolicy, now: number): RetentionPlan {
  const rotated = rotatedFiles(active).map((r) => r.path)
  const overCount = policy.maxFiles > 0 ? Math.max(0, rotated.length - policy.maxFiles) : 0
  let cut = 0
  while (cut < rotated.length) {
    if (cut < overCount) {
      cut++
      continue
    }
    const mtime = policy.maxAgeMs > 0 ? mtimeOf(rotated[cut]!) : undefined
    if (mtime === undefined || now - mtime <= policy.maxAgeMs) break
    cut++
  }
  return { expired: rotated.slice(0, cut), oldestKept: rotated[cut] }
}

/** The chain point a file continues from: the seq before its first line and that line's `prev_hash`. */
export function anchorOf(path: string): RetentionBoundary | undefined {
  const first = firstChainedLineOf(path)
  return first?.prevHash === undefined ? undefined : { seq: first.seq - 1, hash: first.prevHash }
}

/**
 * The body of the retention record the writer chains into the log before it deletes files:
 * `{"timestamp":T,"retention":{"deleted":N,"first":F,"last":L,"through_seq":S,"through_hash":H}}`.
 * `through_seq`/`through_hash` name the line the deleted files end with, which the oldest kept
 * line continues from: `verifyAuditLog` accepts the log starting there (and nowhere else but seq 1).
 */
export function retentionBody(time: number, expired: readonly string[], through: RetentionBoundary | undefined): string {
  const record: Record<string, unknown> = {
    deleted: expired.length,
    first: basename(expired[0] ?? ''),
    last: basename(expired[expired.length - 1] ?? ''),
  }
  if (through) Object.assign(record, { through_seq: through.seq, through_hash: through.hash })
  return `{"timestamp":${JSON.stringify(new Date(time).toISOString())},"retention":${JSON.stringify(record)}}`
}

/** The boundary a chained retention record states, when `text` is one. */
export function retentionBoundaryIn(text: string): RetentionBoundary | undefined {
  if (!text.includes(',"retention":{')) return undefined
  let obj: unknown
  try {
    obj = JSON.parse(text)
  } catch {
    return undefined
  }
  const r = (obj as { retention?: unknown; event_type?: unknown }).retention
  if ((obj as { event_type?: unknown }).event_type !== undefined || r === null || typeof r !== 'object') return undefined
  const { through_seq: seq, through_hash: hash } = r as { through_seq?: unknown; through_hash?: unknown }
  return typeof seq === 'number' && typeof hash === 'string' ? { seq, hash } : undefined
}

/** What the keeper needs of the writer: the active file and a way to chain one line now. */
export interface RetentionHost {
  readonly path: string
  /** Bytes in the active file. */
  readonly size: number
  /** Where the chain stands (the line a record written now would follow). */
  readonly head: RetentionBoundary
  /** Seal, append and sync one line now; false when it could not be written (already reported). */
  writeNow(body: string): boolean
}

/** How often retention by age is looked at while nothing rotates. */
const MAX_CHECK_MS = 3_600_000
const MIN_CHECK_MS = 1000

/**
 * Deletes the rotated files retention has expired, at start, after each rotation, and (with
 * `maxAge`) on a timer, so a quiet log's old files go on time too. A retention record naming the
 * line they end with is chained into the log and synced first, so the kept log still verifies as a
 * whole (`whole: true`) and an oldest file removed by anyone else does not.
 */
export class RetentionKeeper {
  private due = true
  private readonly timer: NodeJS.Timeout | undefined

  constructor(
    private readonly policy: RetentionPolicy,
    private readonly logger: Logger,
    wake: () => void,
  ) {
    if (policy.maxAgeMs > 0) {
      this.timer = setInterval(() => {
        this.due = true
        wake()
      }, Math.max(MIN_CHECK_MS, Math.min(policy.maxAgeMs, MAX_CHECK_MS)))
      this.timer.unref()
    }
  }

  get isDue(): boolean {
    return this.due
  }

  /** Look again at the next chance (after a rotation, or a reopened file). */
  markDue(): void {
    this.due = true
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
  }

  /** Delete what has expired, when due. Returns the number of files deleted. */
  run(host: RetentionHost): number {
    if (!this.due) return 0
    this.due = false
    const now = Date.now()
    const plan = planRetention(host.path, this.policy, now)
    if (plan.expired.length === 0) return 0
    const through =
      plan.oldestKept !== undefined ? anchorOf(plan.oldestKept) : host.size > 0 ? anchorOf(host.path) : host.head
    if (!host.writeNow(retentionBody(now, plan.expired, through))) {
      this.due = true
      return 0
    }
    const deleted: string[] = []
    for (const path of plan.expired) {
      try {
        unlinkSync(path)
        deleted.push(path)
      } catch (err) {
        this.logger.error(`${PKG}: cannot delete an expired audit file`, { file: path, error: errCode(err) })
      }
    }
    this.logger.info(`${PKG}: expired audit files deleted (retention)`, {
      files: deleted,
      ...(through ? { throughSeq: through.seq } : {}),
    })
    return deleted.length
  }
}
