/**
 * A size-bounded map that forgets its least recently used entry when full. Insertion order of a
 * Map is its recency order: a read or write moves the key to the end, eviction takes the first key.
 */
export class BoundedLru<V> {
  private readonly map = new Map<string, V>()
  /** The most recently used key: using it again needs no reordering (a steady client's common case). */
  private newest: string | undefined

  constructor(readonly maxSize: number) {}

  get size(): number {
    return this.map.size
  }

  get(key: string): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined && key !== this.newest) {
      this.map.delete(key)
      this.map.set(key, value)
      this.newest = key
    }
    return value
  }

  /** Read without changing recency. */
  peek(key: string): V | undefined {
    return this.map.get(key)
  }

  set(key: string, value: V): void {
    if (key === this.newest) {
      this.map.set(key, value)
      return
    }
    if (this.map.has(key)) this.map.delete(key)
    else if (this.map.size >= this.maxSize) {
      const oldest = this.map.keys().next()
      if (!oldest.done) this.map.delete(oldest.value)
    }
    this.map.set(key, value)
    this.newest = key
  }

  delete(key: string): void {
    this.map.delete(key)
    if (key === this.newest) this.newest = undefined
  }

  clear(): void {
    this.map.clear()
    this.newest = undefined
  }
}
