import { suggest } from '@gatehouse/core'

/** The metrics an alert condition can name: the counters of @gatehouse/metrics, without prefix and `_total`. */
export const ALERT_METRICS = ['auth_failures', 'rate_limit_violations', 'security_events', 'credential_rejections', 'credentials_disabled'] as const
export type AlertMetric = (typeof ALERT_METRICS)[number]

export interface ParsedCondition {
  metric: AlertMetric
  operator: '>' | '>='
  threshold: number
  /** Occurrences in the window at which the rule fires: threshold + 1 for `>`, threshold for `>=`. */
  min: number
}

const CONDITION = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|>)\s*(\d{1,9})\s*$/

/**
 * Parse `<metric> > N` or `<metric> >= N`. Returns the parsed condition, or a sentence saying
 * what is wrong (unknown metric with a did-you-mean, bad syntax).
 */
export function parseCondition(text: string): ParsedCondition | string {
  const m = CONDITION.exec(text)
  if (!m) {
    return `condition ${JSON.stringify(text)} must read "<metric> > <whole number>" (or >=), e.g. "auth_failures > 100"`
  }
  const name = m[1]!
  if (!(ALERT_METRICS as readonly string[]).includes(name)) {
    const hint = suggest(name, ALERT_METRICS)
    return `condition ${JSON.stringify(text)} names an unknown metric ${JSON.stringify(name)}${
      hint ? ` (did you mean "${hint}"?)` : ''
    }; known: ${ALERT_METRICS.join(', ')}`
  }
  const operator = m[2] as '>' | '>='
  const threshold = Number(m[3])
  const min = operator === '>' ? threshold + 1 : threshold
  if (min < 1) return `condition ${JSON.stringify(text)} would fire on nothing: use a threshold of at least 1 with >=`
  return { metric: name as AlertMetric, operator, threshold, min }
}
