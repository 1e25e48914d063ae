import type { KeyLimits, KeyLimitScope } from '@gatehouse/core'

/** The limit flags of `keys create`, and the key limit each sets. */
export const LIMIT_FLAGS = { rpm: 'requests_per_minute', tpm: 'tokens_per_minute', 'monthly-tokens': 'monthly_tokens', concurrency: 'concurrency' } as const

/**
 * `--tpm 50000,openai=20000` → `{ tokens_per_minute: 50000, providers: { openai: { tokens_per_minute: 20000 } } }`.
 * A value that is not digits is kept as given, so validateKeyScope names it.
 */
export function limitsFromFlags(values: Record<string, unknown>): KeyLimitScope | undefined {
  let out: Record<string, unknown> | undefined
  const num = (v: string): number | string => (/^\d{1,15}$/.test(v) ? Number(v) : v)
  for (const [flag, name] of Object.entries(LIMIT_FLAGS)) {
    const raw = values[flag]
    if (typeof raw !== 'string') continue
    out ??= {}
    for (const part of raw.split(',').map((p) => p.trim())) {
      const eq = part.indexOf('=')
      if (eq === -1) {
        out[name] = num(part)
        continue
      }
      const providers = ((out.providers as Record<string, Record<string, unknown>> | undefined) ??= {})
      ;(providers[part.slice(0, eq)] ??= {})[name] = num(part.slice(eq + 1))
    }
  }
  return out as KeyLimitScope | undefined
}

/** A scope error in the CLI's words: `limits.providers.openai.tokens_per_minute` → `--tpm openai=`. */
export function flagNames(message: string): string {
  const flagOf = (limit: string): string => Object.entries(LIMIT_FLAGS).find(([, n]) => n === limit)?.[0] ?? limit
  const names = 'requests_per_minute|tokens_per_minute|monthly_tokens|concurrency'
  return message
    .replace(new RegExp(`^limits\\.providers\\.(\\w+)\\.(${names})`), (_m, p: string, l: string) => `--${flagOf(l)} ${p}=…:`)
    .replace(new RegExp(`^limits\\.(${names})`), (_m, l: string) => `--${flagOf(l)}:`)
    .replace(/^limits\.providers(\.\w+)?:/, (_m, p: string | undefined) => `a limit for a provider${p ? ` (${p.slice(1)}=…)` : ''}:`)
    .replace(/^(providers|endpoints|models|networks|objects)\b/, '--$1')
}

/** `rpm=60 openai.tpm=20000`, or `gateway defaults`. */
export function describeLimits(limits: KeyLimitScope | undefined): string {
  if (!limits) return 'gateway defaults'
  const short = (l: KeyLimits, prefix: string): string[] =>
    Object.entries(LIMIT_FLAGS).flatMap(([flag, name]) => (l[name] !== undefined ? [`${prefix}${flag}=${l[name]}`] : []))
  return [...short(limits, ''), ...Object.entries(limits.providers ?? {}).flatMap(([p, l]) => short(l ?? {}, `${p}.`))].join(' ') || 'gateway defaults'
}
