import type { SchemaObject } from 'ajv'
import { requestBodySchemas } from './schemas'
import { CAP_KEYS } from './caps'
import type { PathSegment } from './scan'

function collectPropertyNames(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) collectPropertyNames(item, out)
    return
  }
  if (node === null || typeof node !== 'object') return
  for (const [key, value] of Object.entries(node as SchemaObject)) {
    if (key === 'properties' && value !== null && typeof value === 'object') {
      for (const name of Object.keys(value as object)) out.add(name)
    }
    collectPropertyNames(value, out)
  }
}

/**
 * The only key names an error message or event may show: the fields the providers document (every
 * property our schemas declare), the max-token keys and the refused prototype keys. Any other key
 * came from the client and is shown as `?`, so no body content reaches an answer or an event.
 */
const SHOWN_KEYS: ReadonlySet<string> = (() => {
  const names = new Set<string>([
    ...CAP_KEYS,
    '__proto__',
    'constructor',
    'prototype',
    'generationConfig',
    'generation_config',
    'requests',
    'params',
  ])
  collectPropertyNames(Object.values(requestBodySchemas), names)
  return names
})()

export const MAX_SHOWN_SEGMENTS = 12

/** `['messages', 0, 'content']` → `messages[0].content`; unknown keys as `?`; long paths cut with `…`. */
export function formatField(path: readonly PathSegment[]): string {
  const p = formatJsonPath(path).slice(1)
  return p.charCodeAt(0) === 0x2e ? p.slice(1) : p
}

/**
 * `['messages', 0, 'content']` → `$.messages[0].content`, shown as `formatField` shows fields;
 * `cut` adds the `…` of a path that went deeper than it lists.
 */
export function formatJsonPath(path: readonly PathSegment[], cut = false): string {
  let out = '$'
  const shown = path.length > MAX_SHOWN_SEGMENTS ? path.slice(0, MAX_SHOWN_SEGMENTS) : path
  for (const seg of shown) out += typeof seg === 'number' ? `[${seg}]` : `.${SHOWN_KEYS.has(seg) ? seg : '?'}`
  if (cut || path.length > MAX_SHOWN_SEGMENTS) out += '…'
  return out
}
