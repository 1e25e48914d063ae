/**
 * Structural checks on JSON, done before (raw text) or instead of (an already parsed value)
 * JSON.parse: nesting depth, entries per container, prototype-pollution keys and duplicate keys.
 * Both walks are iterative, so a 100k-deep document cannot overflow the stack.
 */

export type PathSegment = string | number

export type ScanFailure =
  | { kind: 'depth'; path: PathSegment[] }
  | { kind: 'elements'; path: PathSegment[] }
  | { kind: 'forbidden_key'; path: PathSegment[] }
  | { kind: 'duplicate_key'; path: PathSegment[] }
  | { kind: 'syntax' }

export interface ScanLimits {
  maxDepth: number
  maxElements: number
}

export interface ScanSuccess {
  kind: 'ok'
  /**
   * Where the scalar values of watched keys sit in the text: `pathId(path)` → [start, end) in
   * UTF-16 code units. Used to rewrite one value without touching any other byte.
   */
  spans: Map<string, [number, number]>
}

interface Frame {
  array: boolean
  /** Array: elements seen. Object: keys seen. */
  count: number
  /** Object: the key whose value comes next (or came last). */
  key: string | undefined
  keys: Set<string> | undefined
  expectKey: boolean
  /** This object is the value of a `constructor` key: a `prototype` key in it is refused. */
  constructorValue: boolean
}

/** A stable id for a path, for span lookups (not for display). */
export const pathId = (path: readonly PathSegment[]): string => JSON.stringify(path)

function pathOf(stack: readonly Frame[], upTo = stack.length): PathSegment[] {
  const path: PathSegment[] = []
  for (let i = 0; i < upTo; i++) {
    const f = stack[i]!
    if (f.array) path.push(f.count - 1)
    else if (f.key !== undefined) path.push(f.key)
  }
  return path
}

const MAX_SPAN_DEPTH = 4
/** Characters that end a bare literal (number, true, false, null). */
const DELIMS = new Set([0x20, 0x09, 0x0a, 0x0d, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x22])

/**
 * Scan JSON text without building it. Stops at the first limit exceeded. A `syntax` result means
 * the text is certainly not valid JSON; `ok` does not promise validity (JSON.parse decides that),
 * but for every valid document the structure seen here is the one JSON.parse builds.
 */
export function scanJson(
  text: string,
  limits: ScanLimits,
  watchKeys: ReadonlySet<string>,
): ScanSuccess | ScanFailure {
  const stack: Frame[] = []
  const spans = new Map<string, [number, number]>()
  const n = text.length
  let i = 0

  // Counts a value starting in the current container; returns a failure when it is one too many.
  const valueStarts = (): ScanFailure | undefined => {
    const top = stack[stack.length - 1]
    if (top?.array) {
      top.count++
      if (top.count > limits.maxElements) return { kind: 'elements', path: pathOf(stack, stack.length - 1) }
    }
    return undefined
  }
  const recordScalar = (start: number, end: number): void => {
    const top = stack[stack.length - 1]
    // Max-token fields sit at most four containers deep (root, requests, requests[i], params).
    if (
      top &&
      !top.array &&
      stack.length <= MAX_SPAN_DEPTH &&
      top.key !== undefined &&
      watchKeys.has(top.key)
    ) {
      spans.set(pathId(pathOf(stack)), [start, end])
    }
  }

  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      i++
      continue
    }
    switch (c) {
      case 0x7b: // {
      case 0x5b: {
        // [
        const fail = valueStarts()
        if (fail) return fail
        const parent = stack[stack.length - 1]
        if (stack.length + 1 > limits.maxDepth) return { kind: 'depth', path: pathOf(stack) }
        const isArray = c === 0x5b
        stack.push({
          array: isArray,
          count: 0,
          key: undefined,
          keys: isArray ? undefined : new Set<string>(),
          expectKey: !isArray,
          constructorValue: !isArray && parent !== undefined && !parent.array && parent.key === 'constructor',
        })
        i++
        continue
      }
      case 0x7d: // }
      case 0x5d: {
        // ]
        const top = stack.pop()
        if (!top || top.array !== (c === 0x5d)) return { kind: 'syntax' }
        i++
        continue
      }
      case 0x2c: {
        // ,
        const top = stack[stack.length - 1]
        if (!top) return { kind: 'syntax' }
        if (!top.array) top.expectKey = true
        i++
        continue
      }
      case 0x3a: // :
        i++
        continue
      case 0x22: {
        // " : find the closing quote natively; a quote preceded by an odd run of backslashes is escaped.
        const start = i
        let from = i + 1
        let end = -1
        while (end === -1) {
          const q = text.indexOf('"', from)
          if (q === -1) return { kind: 'syntax' }
          let b = q - 1
          while (b > start && text.charCodeAt(b) === 0x5c) b--
          if ((q - 1 - b) % 2 === 0) end = q
          else from = q + 1
        }
        i = end + 1
        const top = stack[stack.length - 1]
        if (top && !top.array && top.expectKey) {
          let key = text.slice(start + 1, end)
          if (key.includes('\\')) {
            try {
              key = JSON.parse(text.slice(start, i)) as string
            } catch {
              return { kind: 'syntax' }
            }
          }
          top.expectKey = false
          top.key = key
          if (key === '__proto__' || (top.constructorValue && key === 'prototype')) {
            return { kind: 'forbidden_key', path: pathOf(stack) }
          }
          if (top.keys!.has(key)) return { kind: 'duplicate_key', path: pathOf(stack) }
          top.keys!.add(key)
          top.count++
          if (top.count > limits.maxElements)
            return { kind: 'elements', path: pathOf(stack, stack.length - 1) }
        } else {
          const fail = valueStarts()
          if (fail) return fail
          recordScalar(start, i)
        }
        continue
      }
      default: {
        const start = i
        while (i < n && !DELIMS.has(text.charCodeAt(i))) i++
        if (i === start) return { kind: 'syntax' }
        const fail = valueStarts()
        if (fail) return fail
        recordScalar(start, i)
      }
    }
  }
  if (stack.length > 0) return { kind: 'syntax' }
  return { kind: 'ok', spans }
}

interface WalkNode {
  value: unknown
  depth: number
  /** The node holding this one, and the key or index this one sits at (paths are built on failure only). */
  parent: WalkNode | undefined
  segment: PathSegment | undefined
}

function walkPath(node: WalkNode | undefined, ...tail: PathSegment[]): PathSegment[] {
  const path: PathSegment[] = []
  for (let n = node; n?.segment !== undefined; n = n.parent) path.push(n.segment)
  return [...path.reverse(), ...tail]
}

/**
 * The same limits on a value that is already parsed (a body another middleware parsed).
 * Iterative, linear in the size of the value.
 */
export function walkValue(root: unknown, limits: ScanLimits): ScanFailure | undefined {
  const todo: WalkNode[] = [{ value: root, depth: 0, parent: undefined, segment: undefined }]
  while (todo.length > 0) {
    const node = todo.pop()!
    const { value, depth } = node
    if (value === null || typeof value !== 'object') continue
    if (depth + 1 > limits.maxDepth) return { kind: 'depth', path: walkPath(node) }
    if (Array.isArray(value)) {
      if (value.length > limits.maxElements) return { kind: 'elements', path: walkPath(node) }
      for (let i = 0; i < value.length; i++) {
        const v: unknown = value[i]
        if (v !== null && typeof v === 'object')
          todo.push({ value: v, depth: depth + 1, parent: node, segment: i })
      }
      continue
    }
    const keys = Object.keys(value)
    if (keys.length > limits.maxElements) return { kind: 'elements', path: walkPath(node) }
    for (const key of keys) {
      const v = (value as Record<string, unknown>)[key]
      if (key === '__proto__') return { kind: 'forbidden_key', path: walkPath(node, key) }
      if (
        key === 'constructor' &&
        v !== null &&
        typeof v === 'object' &&
        Object.prototype.hasOwnProperty.call(v, 'prototype')
      ) {
        return { kind: 'forbidden_key', path: walkPath(node, key, 'prototype') }
      }
      if (v !== null && typeof v === 'object')
        todo.push({ value: v, depth: depth + 1, parent: node, segment: key })
    }
  }
  return undefined
}
