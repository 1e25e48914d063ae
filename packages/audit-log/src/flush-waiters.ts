interface Waiter {
  target: number
  resolve: () => void
  reject: (err: Error) => void
}

/** The callers of flush(), each waiting until the events queued before its call are on disk. */
export class FlushWaiters {
  private list: Waiter[] = []

  get size(): number {
    return this.list.length
  }

  /** A promise settled once `target` queue entries are written and synced. */
  add(target: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.list.push({ target, resolve, reject })
    })
  }

  /**
   * Settle the waiters whose entries are all written (`persisted`): after `sync()` resolves, or
   * with its error (mapped by `fail`) when it rejects.
   */
  async settle(persisted: number, sync: () => Promise<void>, fail: (err: unknown) => Error): Promise<void> {
    const ready = this.list.filter((w) => w.target <= persisted)
    if (ready.length === 0) return
    this.list = this.list.filter((w) => w.target > persisted)
    try {
      await sync()
      for (const w of ready) w.resolve()
    } catch (err) {
      const e = fail(err)
      for (const w of ready) w.reject(e)
    }
  }

  rejectAll(err: Error): void {
    const waiting = this.list
    this.list = []
    for (const w of waiting) w.reject(err)
  }
}
