import type { SecurityEvent } from '@gatehouse/core'
import { html, type SafeHtml } from './html'
import type { DashboardDenylistEntry, DashboardFinding, DashboardLimit } from './options'
import type { DashboardView, Section } from './view'

// The dashboard's pages, rendered on the server. Every interpolated value goes through html`` and is escaped.

export function page(base: string, title: string, body: SafeHtml): SafeHtml {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>Gatehouse · ${title}</title>
<link rel="icon" href="${base}/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="${base}/assets/dashboard.css">
<script src="${base}/assets/dashboard.js" defer></script>
</head>
<body>
${body}
</body>
</html>
`
}

export function loginBody(base: string, csrf: string, message?: string): SafeHtml {
  return html`<main class="login">
<h1>Gatehouse security dashboard</h1>
<p>Sign in with the management key.</p>
${message ? html`<p class="error" role="alert" id="login-error">${message}</p>` : ''}
<form method="post" action="${base}/login" autocomplete="off">
<input type="hidden" name="csrf" value="${csrf}">
<label for="key">Management key</label>
<input type="password" id="key" name="key" required autofocus autocomplete="off" spellcheck="false">
<button type="submit">Sign in</button>
</form>
</main>`
}

/** A page with one short message: a refused or unreadable form. */
export const messagePage = (base: string, title: string, message: string): SafeHtml =>
  page(base, title, html`<main class="login"><h1>${title}</h1><p class="error">${message}</p></main>`)

const dateText = (v: unknown): string => {
  if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.toISOString() : ''
  if (typeof v === 'string' && Number.isFinite(Date.parse(v))) return new Date(Date.parse(v)).toISOString()
  return typeof v === 'string' ? v : ''
}
const time = (v: unknown): SafeHtml => {
  const t = dateText(v)
  return t === '' ? html`<span class="empty">–</span>` : html`<time datetime="${t}">${t.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z')}</time>`
}
const SEVERITIES = new Set(['high', 'medium', 'low', 'info'])
const short = (v: unknown, max: number): string => {
  let s: string
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? '')
  } catch {
    s = '[unprintable]'
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}
const num = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US') : '')

function section<T>(id: string, title: string, data: Section<T>, body: (value: T) => SafeHtml, extra?: SafeHtml): SafeHtml {
  return html`<section id="${id}" aria-labelledby="${id}-title">
<h2 id="${id}-title">${title}</h2>
${data.ok ? [extra ?? '', body(data.value)] : html`<p class="unavailable">${data.reason === 'not configured' ? 'Not configured.' : 'Not available right now (see the gateway log).'}</p>`}
</section>`
}

function table(head: readonly string[], rows: SafeHtml[], empty: string): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`
  return html`<table><thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`
}

const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : [])

export function dashboardBody(base: string, csrf: string, view: DashboardView): SafeHtml {
  const now = new Date().toISOString()
  return html`<header>
<h1>Gatehouse security dashboard</h1>
<p class="meta">Read-only · generated ${time(now)}</p>
<label><input type="checkbox" id="auto-refresh"> Refresh every 30 s</label>
<form method="post" action="${base}/logout"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Sign out</button></form>
</header>
<main>
${section('doctor', 'Doctor findings', view.doctor, (findings) =>
  table(
    ['Severity', 'Finding', 'Fix'],
    list<DashboardFinding>(findings).map((f) => {
      const sev = SEVERITIES.has(String(f.severity)) ? String(f.severity) : 'other'
      return html`<tr><td><span class="sev sev-${sev}">${f.severity}</span></td><td>${f.message}${f.id ? html` <code>${f.id}</code>` : ''}</td><td>${f.fix ?? ''}</td></tr>`
    }),
    'No findings.',
  ),
)}
${section(
  'events',
  `Recent security events (last ${view.limit})`,
  view.events,
  (events) =>
    table(
      ['Time', 'Event', 'Result', 'Provider', 'Key', 'Address', 'Request', 'Details'],
      list<SecurityEvent>(events).map(
        (e) => html`<tr>
<td>${time(e.timestamp)}</td>
<td class="t-${String(e.event_type).replace(/[^a-z_]/g, '')}">${e.event_type}</td>
<td>${e.result ?? ''}</td>
<td>${e.provider ?? ''}</td>
<td class="mono">${e.user_id ?? ''}</td>
<td class="mono">${e.ip ?? ''}</td>
<td class="mono">${e.request_id ?? ''}</td>
<td class="mono details">${e.details === undefined ? '' : short(e.details, 300)}</td>
</tr>`,
      ),
      'No events yet.',
    ),
  html`<input type="search" id="event-filter" placeholder="Filter events" aria-label="Filter events">`,
)}
<div class="grid">
${section('refused-ips', 'Top refused addresses', view.refused, (r) =>
  table(
    ['Address', 'Refusals'],
    list<{ ip: string; count: number }>(r.ips).map((x) => html`<tr><td class="mono">${x.ip}</td><td class="num">${num(x.count)}</td></tr>`),
    'No refusals.',
  ),
)}
${section('refused-keys', 'Top refused keys', view.refused, (r) =>
  table(
    ['Key', 'Refusals'],
    list<{ key_id: string; count: number }>(r.keys).map((x) => html`<tr><td class="mono">${x.key_id}</td><td class="num">${num(x.count)}</td></tr>`),
    'No refusals.',
  ),
)}
</div>
${section('denylist', 'Denylist', view.deny, (entries) =>
  table(
    ['Address or network', 'Reason', 'Added', 'Expires'],
    list<DashboardDenylistEntry>(entries).map(
      (x) => html`<tr><td class="mono">${x.ip}</td><td>${x.reason ?? ''}</td><td>${time(x.addedAt)}</td><td>${x.expiresAt ? time(x.expiresAt) : 'never'}</td></tr>`,
    ),
    'The denylist is empty.',
  ),
)}
${section('limits', 'Limits and quota use', view.limits, (limits) =>
  table(
    ['Limit', 'Used', 'Limit', 'Remaining', 'Resets'],
    list<DashboardLimit>(limits).map((x) => {
      const max = typeof x.limit === 'number' && x.limit > 0 ? x.limit : undefined
      const meter =
        max !== undefined && typeof x.used === 'number'
          ? html` <meter min="0" max="${max}" low="${max * 0.75}" high="${max * 0.9}" optimum="0" value="${Math.min(max, Math.max(0, x.used))}"></meter>`
          : ''
      return html`<tr><td>${x.name}</td><td class="num">${num(x.used)}${meter}</td><td class="num">${typeof x.limit === 'number' ? num(x.limit) : x.limit}</td><td class="num">${num(x.remaining)}</td><td>${x.resetsAt ? time(x.resetsAt) : ''}</td></tr>`
    }),
    'No limits configured.',
  ),
)}
</main>`
}
