import type { PathSegment } from './scan'
import { formatJsonPath, MAX_SHOWN_SEGMENTS } from './fields'

/** Where one position of a JSON text sits. */
export interface Location {
  /** `$.messages[2].content[0].text` (keys the providers do not document as `?`); `$` outside any string. */
  path: string
  /** Index of the closing quote of the string holding the position; -1 outside any string. */
  stringEnd: number
}

interface Frame {
  array: boolean
  /** Array: values seen. */
  count: number
  /** Object: the current key's text, quotes included. */
  key: string | undefined
  expectKey: boolean
}

/** Characters that end a bare literal (number, true, false, null). */
const DELIMS = new Set([0x20, 0x09, 0x0a, 0x0d, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x22])

/** The index of the quote that closes the string opened at `start`, or -1. */
function stringEndAt(text: string, start: number): number {
  let from = start + 1
  for (;;) {
    const q = text.indexOf('"', from)
    if (q === -1) return -1
    let b = q - 1
    while (b > start && text.charCodeAt(b) === 0x5c) b--
    if ((q - 1 - b) % 2 === 0) return q
    from = q + 1
  }
}

function keyName(quoted: string): string {
  if (!quoted.includes('\\')) return quoted.slice(1, -1)
  try {
    return JSON.parse(quoted) as string
  } catch {
    return '?'
  }
}

/**
 * One pass of a small tokenizer over a JSON text: for each position in `positions` (ascending),
 * the path of the string that holds it and where that string ends. Run only when the body holds a
 * credential. It keeps the first `MAX_SHOWN_SEGMENTS` levels (what a path shows) and counts the
 * rest, so hostile nesting costs no memory; a text that is not JSON yields `$` where it stops
 * making sense. `wantPath(i)` says which positions need their path (the others only their string).
 */
export function locate(
  text: string,
  positions: readonly number[],
  wantPath: (i: number) => boolean,
): Location[] {
  const out: Location[] = []
  const stack: Frame[] = []
  let hidden = 0
  let h = 0
  const n = text.length
  const pathHere = (extra?: string): string => {
    const segs: PathSegment[] = []
    for (const f of stack) {
      if (f.array) segs.push(f.count - 1)
      else if (f.key !== undefined) segs.push(keyName(f.key))
    }
    if (extra !== undefined && hidden === 0) segs.push(keyName(extra))
    return formatJsonPath(segs, hidden > 0)
  }
  const top = (): Frame | undefined => (hidden > 0 ? undefined : stack[stack.length - 1])
  const valueStarts = (): void => {
    const t = top()
    if (t?.array) t.count++
  }
  let i = 0
  while (i < n && h < positions.length) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      const end = stringEndAt(text, i)
      const t = top()
      const isKey = t !== undefined && !t.array && t.expectKey
      if (!isKey) valueStarts()
      for (; h < positions.length && positions[h]! < i; h++) out.push({ path: '$', stringEnd: -1 })
      if (end === -1) break
      const quoted = text.slice(i, end + 1)
      for (; h < positions.length && positions[h]! < end; h++) {
        out.push({ path: wantPath(h) ? pathHere(isKey ? quoted : undefined) : '', stringEnd: end })
      }
      if (isKey) {
        t.key = quoted
        t.expectKey = false
      }
      i = end + 1
      continue
    }
    if (c === 0x7b || c === 0x5b) {
      valueStarts()
      if (hidden > 0 || stack.length >= MAX_SHOWN_SEGMENTS) hidden++
      else stack.push({ array: c === 0x5b, count: 0, key: undefined, expectKey: c === 0x7b })
    } else if (c === 0x7d || c === 0x5d) {
      if (hidden > 0) hidden--
      else stack.pop()
    } else if (c === 0x2c) {
      const t = top()
      if (t && !t.array) t.expectKey = true
    } else if (!DELIMS.has(c)) {
      valueStarts()
      while (i < n && !DELIMS.has(text.charCodeAt(i))) i++
      continue
    }
    i++
  }
  while (out.length < positions.length) out.push({ path: '$', stringEnd: -1 })
  return out
}
