import { wordMask, type Words } from './address'

/**
 * A path-compressed binary trie of network prefixes (a PATRICIA-style radix tree). A lookup walks
 * at most one node per branching point and compares whole 32-bit words, so it costs
 * O(log n)-ish steps of a few integer operations each, whatever the number of entries or the mix
 * of prefix lengths. The structure only grows; a changed list is rebuilt, which is cheap.
 */
class Node<T> {
  c0: Node<T> | undefined = undefined
  c1: Node<T> | undefined = undefined
  value: T | undefined = undefined
  /** The mask of the last, partial word of the prefix. */
  readonly m: number
  constructor(
    readonly p0: number,
    readonly p1: number,
    readonly p2: number,
    readonly p3: number,
    readonly len: number,
  ) {
    this.m = wordMask(len & 31)
  }
}

function bitAt(len: number, a: number, b: number, c: number, d: number): number {
  const word = len >>> 5
  const w = word === 0 ? a : word === 1 ? b : word === 2 ? c : d
  return (w >>> (31 - (len & 31))) & 1
}

function prefixMatches<T>(n: Node<T>, a: number, b: number, c: number, d: number): boolean {
  const len = n.len
  if (len < 32) return len === 0 || ((a & n.m) >>> 0) === n.p0
  if (a !== n.p0) return false
  if (len < 64) return len === 32 || ((b & n.m) >>> 0) === n.p1
  if (b !== n.p1) return false
  if (len < 96) return len === 64 || ((c & n.m) >>> 0) === n.p2
  if (c !== n.p2) return false
  if (len < 128) return len === 96 || ((d & n.m) >>> 0) === n.p3
  return d === n.p3
}

function commonPrefix(x: Words, y: Words, max: number): number {
  for (let i = 0; i < 4; i++) {
    const diff = (x[i]! ^ y[i]!) >>> 0
    if (diff !== 0) return Math.min(max, i * 32 + Math.clz32(diff))
    if ((i + 1) * 32 >= max) return max
  }
  return max
}

function masked(w: Words, len: number): Words {
  return [
    (w[0] & wordMask(len)) >>> 0,
    (w[1] & wordMask(len - 32)) >>> 0,
    (w[2] & wordMask(len - 64)) >>> 0,
    (w[3] & wordMask(len - 96)) >>> 0,
  ]
}

const wordsOf = <T>(n: Node<T>): Words => [n.p0, n.p1, n.p2, n.p3]

export class PrefixTrie<T> {
  private readonly root = new Node<T>(0, 0, 0, 0, 0)
  private count = 0

  /** @param width 32 for IPv4, 128 for IPv6 */
  constructor(readonly width: 32 | 128) {}

  get size(): number {
    return this.count
  }

  /** Add a network. The first value stored for a prefix is kept when the same prefix comes again. */
  insert(words: Words, prefix: number, value: T): void {
    const p = masked(words, prefix)
    const [a, b, c, d] = p
    let node = this.root
    for (;;) {
      if (node.len === prefix) {
        if (node.value === undefined) {
          node.value = value
          this.count++
        }
        return
      }
      const bit = bitAt(node.len, a, b, c, d)
      const child = bit === 0 ? node.c0 : node.c1
      const attach = (n: Node<T>): void => {
        if (bit === 0) node.c0 = n
        else node.c1 = n
      }
      if (!child) {
        const leaf = new Node<T>(a, b, c, d, prefix)
        leaf.value = value
        this.count++
        attach(leaf)
        return
      }
      const common = commonPrefix(wordsOf(child), p, Math.min(child.len, prefix))
      if (common === child.len) {
        node = child
        continue
      }
      const [s0, s1, s2, s3] = masked(p, common)
      const split = new Node<T>(s0, s1, s2, s3, common)
      if (common === prefix) split.value = value
      else {
        const leaf = new Node<T>(a, b, c, d, prefix)
        leaf.value = value
        if (bitAt(common, a, b, c, d) === 0) split.c0 = leaf
        else split.c1 = leaf
      }
      if (bitAt(common, child.p0, child.p1, child.p2, child.p3) === 0) split.c0 = child
      else split.c1 = child
      this.count++
      attach(split)
      return
    }
  }

  /**
   * The value of the shortest stored prefix that contains the address, or undefined. `accept`
   * can pass over a value (an expired entry) so the walk goes on to longer prefixes.
   */
  lookup(a: number, b = 0, c = 0, d = 0, accept?: (value: T) => boolean): T | undefined {
    let node: Node<T> | undefined = this.root
    const width = this.width
    while (node) {
      if (!prefixMatches(node, a, b, c, d)) return undefined
      const v = node.value
      if (v !== undefined && (accept === undefined || accept(v))) return v
      if (node.len >= width) return undefined
      node = bitAt(node.len, a, b, c, d) === 0 ? node.c0 : node.c1
    }
    return undefined
  }
}
