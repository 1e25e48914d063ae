/**
 * Server-side HTML with escaping by default: every value interpolated into `html\`…\`` is escaped
 * unless it is itself the result of `html` (or `raw`). Nothing from the data can become markup.
 */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

// eslint-disable-next-line no-control-regex
const NUL = /\u0000/g

/** Escape text for an HTML text node or a quoted attribute value; NUL, which HTML does not allow, is removed. */
export const escapeHtml = (value: unknown): string => String(value).replace(NUL, '').replace(/[&<>"']/g, (c) => ESCAPES[c]!)

/** Trusted markup written in this package (never data). */
export const raw = (markup: string): SafeHtml => new SafeHtml(markup)

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value
  if (Array.isArray(value)) return value.map(render).join('')
  if (value === undefined || value === null || value === false) return ''
  return escapeHtml(value)
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '')
  return new SafeHtml(out)
}
