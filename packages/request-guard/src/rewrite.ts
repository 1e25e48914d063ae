import { pathId, type PathSegment } from './scan'
import type { CapEdit, Checked } from './check'

/**
 * The bytes to forward for a body with clamps or inserted caps, with the same values set on `obj`
 * (the parsed body). Only the clamped numbers are rewritten; every other byte stays as the client
 * sent it. An inserted cap has no bytes to replace: it is spliced in at the end of the top-level
 * object when it can be, and otherwise the body is serialised again.
 */
export function rewriteBody(
  text: string,
  obj: Record<string, unknown>,
  spans: ReadonlyMap<string, [number, number]>,
  result: Checked,
): Buffer {
  const edits = result.clamps.map((c) => ({ ...c, span: spans.get(pathId(c.path)) }))
  for (const c of edits) setAt(obj, c.path, c.cap)
  for (const i of result.inserts) setAt(obj, i.path, i.cap)
  const spliced = result.clamps.length === 0 ? spliceInserts(text, result.inserts) : undefined
  if (spliced !== undefined) return Buffer.from(spliced, 'utf8')
  if (result.inserts.length === 0 && edits.every((e) => e.span)) {
    let rewritten = text
    for (const e of [...edits].sort((a, b) => b.span![0] - a.span![0])) {
      rewritten = rewritten.slice(0, e.span![0]) + String(e.cap) + rewritten.slice(e.span![1])
    }
    return Buffer.from(rewritten, 'utf8')
  }
  return Buffer.from(JSON.stringify(obj), 'utf8')
}

/** Set every clamp and inserted cap on a parsed body (one another parser produced). */
export function applyEdits(obj: Record<string, unknown>, result: Checked): void {
  for (const c of result.clamps) setAt(obj, c.path, c.cap)
  for (const i of result.inserts) setAt(obj, i.path, i.cap)
}

/**
 * The body text with caps written in at its end, without serialising it again: only for caps that
 * go at the top level (`max_tokens`) or into a top-level object the body does not have yet
 * (`generationConfig`). Undefined when an insert goes anywhere else.
 */
function spliceInserts(text: string, inserts: readonly CapEdit[]): string | undefined {
  let end = text.length - 1
  while (end >= 0 && (text[end] === ' ' || text[end] === '\n' || text[end] === '\r' || text[end] === '\t'))
    end--
  if (text[end] !== '}') return undefined
  let members = ''
  for (const { path, cap } of inserts) {
    const key = path.length === 1 && typeof path[0] === 'string' ? JSON.stringify(path[0]) : undefined
    // A key the text names anywhere (a null cap, the same word in a message) takes the slow path:
    // the forwarded body must never hold a key twice.
    if (key === undefined || text.includes(key)) return undefined
    members += `,${key}:${cap}`
  }
  let before = end - 1
  while (
    before >= 0 &&
    (text[before] === ' ' || text[before] === '\n' || text[before] === '\r' || text[before] === '\t')
  )
    before--
  // An empty object takes the members without the leading comma.
  if (text[before] === '{') members = members.slice(1)
  return text.slice(0, end) + members + text.slice(end)
}

/** Set a value at a path, creating the objects on the way (a Gemini body without generationConfig). */
function setAt(root: Record<string, unknown>, path: readonly PathSegment[], value: unknown): void {
  let node: Record<string | number, unknown> = root
  for (let i = 0; i < path.length - 1; i++) {
    const next = node[path[i]!]
    if (next === null || typeof next !== 'object') node[path[i]!] = {}
    node = node[path[i]!] as Record<string | number, unknown>
  }
  node[path[path.length - 1]!] = value
}
