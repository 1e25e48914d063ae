/** What a full sink queue gives up: the oldest queued line, or the line that did not fit. */
export type OverflowPolicy = 'drop-oldest' | 'drop-newest'

/**
 * A bounded FIFO of lines on a ring buffer: push, shift and dropping the oldest are O(1), so a
 * sink's queue never costs the caller more than a few assignments, however full it is.
 */
export class LineQueue {
  private readonly ring: Array<string | undefined>
  private head = 0
  private size = 0

  constructor(readonly capacity: number) {
    this.ring = new Array<string | undefined>(capacity)
  }

  get length(): number {
    return this.size
  }

  /** Append a line; when full, returns the line given up under `policy` (else undefined). */
  push(line: string, policy: OverflowPolicy): string | undefined {
    if (this.size === this.capacity) {
      if (policy === 'drop-newest') return line
      const oldest = this.shift()
      this.pushUnchecked(line)
      return oldest
    }
    this.pushUnchecked(line)
    return undefined
  }

  shift(): string | undefined {
    if (this.size === 0) return undefined
    const line = this.ring[this.head]
    this.ring[this.head] = undefined
    this.head = (this.head + 1) % this.capacity
    this.size--
    return line
  }

  /** Up to `max` lines (and at most `maxBytes` of them, at least one line) from the front. */
  take(max: number, maxBytes = Infinity): string[] {
    const out: string[] = []
    let bytes = 0
    while (this.size > 0 && out.length < max) {
      const next = this.ring[this.head]!
      bytes += Buffer.byteLength(next) + 1
      if (out.length > 0 && bytes > maxBytes) break
      out.push(this.shift()!)
    }
    return out
  }

  private pushUnchecked(line: string): void {
    this.ring[(this.head + this.size) % this.capacity] = line
    this.size++
  }
}
