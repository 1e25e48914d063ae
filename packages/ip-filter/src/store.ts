/** One runtime denylist entry. */
export interface DenylistEntry {
  /** The address or network in canonical form: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`. */
  ip: string
  /** Why it was added (shown by `list()` and in refusal events). */
  reason: string
  addedAt: Date
  /** When the entry stops applying; null for a permanent entry. */
  expiresAt: Date | null
}

/**
 * Where runtime denylist entries live. The filter keeps a compiled copy for the request path and
 * reloads it with `list()` whenever the store signals a change, so a store shared by several
 * gateway instances (Redis) gives them one denylist.
 */
export interface DenylistStore {
  /** Every entry that has not expired. Rejects when the store cannot be reached. */
  list(): Promise<DenylistEntry[]>
  /** Add or replace the entry for `entry.ip`. */
  add(entry: DenylistEntry): Promise<void>
  /** Remove the entry for a canonical `ip`; resolves true when one was there. */
  remove(ip: string): Promise<boolean>
  /**
   * Call `listener` whenever the entries may have changed, from this process or another instance,
   * and after the store reconnects. Returns the function that stops the calls.
   */
  subscribe(listener: () => void): () => void
  /** False while the store is known to be unreachable. Absent means always reachable. */
  isAvailable?(): boolean
  /** Stop timers and close what the store opened. */
  shutdown(): Promise<void>
}

const copy = (e: DenylistEntry): DenylistEntry => ({
  ip: e.ip,
  reason: e.reason,
  addedAt: new Date(e.addedAt.getTime()),
  expiresAt: e.expiresAt ? new Date(e.expiresAt.getTime()) : null,
})

/** The in-process store: one instance can be shared by several filters in the same process. */
export class MemoryDenylistStore implements DenylistStore {
  private readonly entries = new Map<string, DenylistEntry>()
  private readonly listeners = new Set<() => void>()

  list(): Promise<DenylistEntry[]> {
    const now = Date.now()
    const out: DenylistEntry[] = []
    for (const [ip, e] of this.entries) {
      if (e.expiresAt && e.expiresAt.getTime() <= now) this.entries.delete(ip)
      else out.push(copy(e))
    }
    return Promise.resolve(out)
  }

  add(entry: DenylistEntry): Promise<void> {
    this.entries.set(entry.ip, copy(entry))
    this.notify()
    return Promise.resolve()
  }

  remove(ip: string): Promise<boolean> {
    const had = this.entries.delete(ip)
    if (had) this.notify()
    return Promise.resolve(had)
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  shutdown(): Promise<void> {
    this.listeners.clear()
    return Promise.resolve()
  }

  private notify(): void {
    for (const l of [...this.listeners]) {
      try {
        l()
      } catch {
        // a listener's failure is its own; the store has changed either way
      }
    }
  }
}

export const isDenylistStore = (v: unknown): v is DenylistStore =>
  typeof v === 'object' &&
  v !== null &&
  ['list', 'add', 'remove', 'subscribe', 'shutdown'].every(
    (m) => typeof (v as Record<string, unknown>)[m] === 'function',
  )
