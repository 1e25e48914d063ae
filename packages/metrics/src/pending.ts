import type { Counter } from 'prom-client'

/**
 * Counter increments kept as plain numbers and added to their prom-client counter when it is
 * collected (a scrape, or `get()`): a request pays one Map lookup instead of prom-client's label
 * validation and hashing per counter. Label values here are bounded, so is the map.
 */
export class PendingCounts<L extends string> {
  private readonly byKey = new Map<string, { labels: Partial<Record<L, string>>; n: number }>()

  add(key: string, labels: () => Partial<Record<L, string>>, n = 1): void {
    const entry = this.byKey.get(key)
    if (entry) entry.n += n
    else this.byKey.set(key, { labels: labels(), n })
  }

  flushInto(counter: Counter<L>): void {
    for (const entry of this.byKey.values()) {
      if (entry.n === 0) continue
      counter.inc(entry.labels, entry.n)
      entry.n = 0
    }
  }
}
