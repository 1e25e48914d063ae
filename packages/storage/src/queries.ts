/**
 * The security-monitoring queries of the README, verbatim (a test checks both match and that each
 * returns what it should). Table names are unqualified: run `SET search_path TO gatehouse;` first,
 * or qualify them with your schema. Days are UTC days.
 */
export const MONITORING_QUERIES = Object.freeze({
  /** Failed authentications per client address and day, last 7 days, more than 10 a day. */
  failedAuthByIp: `SELECT ip_address,
       DATE(timestamp AT TIME ZONE 'UTC') AS day,
       COUNT(*) AS failures
FROM security_events
WHERE event_type = 'auth_failure'
  AND timestamp >= now() - interval '7 days'
GROUP BY ip_address, day
HAVING COUNT(*) > 10
ORDER BY day DESC, failures DESC;`,

  /**
   * Failed authentications per client key and day, last 7 days: a revoked or expired key still in
   * use, or one key tried from many addresses.
   */
  failedAuthByKey: `SELECT key_id,
       DATE(timestamp AT TIME ZONE 'UTC') AS day,
       COUNT(*) AS failures,
       COUNT(DISTINCT ip_address) AS addresses,
       array_agg(DISTINCT result ORDER BY result) AS reasons
FROM security_events
WHERE event_type = 'auth_failure'
  AND key_id IS NOT NULL
  AND timestamp >= now() - interval '7 days'
GROUP BY key_id, day
ORDER BY day DESC, failures DESC;`,

  /** The 20 largest daily token totals per key and provider. */
  dailyTokensByKey: `SELECT key_id, provider,
       DATE(timestamp AT TIME ZONE 'UTC') AS usage_date,
       SUM(total_tokens) AS daily_tokens
FROM api_requests
WHERE key_id IS NOT NULL
  AND total_tokens IS NOT NULL
GROUP BY key_id, provider, usage_date
ORDER BY daily_tokens DESC
LIMIT 20;`,

  /**
   * Token usage spikes: a key's day (last 30 days) above twice its average over the days it was used
   * in the 7 days before.
   */
  tokenSpikesByKey: `WITH daily AS (
  SELECT key_id,
         DATE(timestamp AT TIME ZONE 'UTC') AS day,
         SUM(total_tokens) AS tokens
  FROM api_requests
  WHERE key_id IS NOT NULL
    AND total_tokens IS NOT NULL
    AND timestamp >= now() - interval '37 days'
  GROUP BY key_id, day
),
baseline AS (
  SELECT key_id, day, tokens,
         AVG(tokens) OVER (
           PARTITION BY key_id ORDER BY day
           RANGE BETWEEN INTERVAL '7 days' PRECEDING AND INTERVAL '1 day' PRECEDING
         ) AS avg_prior_7d
  FROM daily
)
SELECT key_id, day, tokens,
       ROUND(avg_prior_7d) AS avg_prior_7d,
       ROUND(tokens / NULLIF(avg_prior_7d, 0), 1) AS ratio
FROM baseline
WHERE tokens > 2 * avg_prior_7d
  AND day >= DATE(now() AT TIME ZONE 'UTC') - 30
ORDER BY day DESC, ratio DESC NULLS FIRST;`,

  /** Every request in a window after a suspected breach (edit the two times; add a key_id filter). */
  requestsAfterBreach: `SELECT timestamp, request_id, key_id, ip_address, provider,
       method, path, response_status, total_tokens
FROM api_requests
WHERE timestamp >= TIMESTAMPTZ '2026-02-19 22:00:00+00'  -- suspected breach time
  AND timestamp <  TIMESTAMPTZ '2026-02-20 06:00:00+00'  -- end of the window, or now()
ORDER BY timestamp DESC;`,

  /** Every security event in the same window: refusals, key use, credential access, config changes. */
  eventsAfterBreach: `SELECT timestamp, event_type, result, key_id, ip_address, request_id, details
FROM security_events
WHERE timestamp >= TIMESTAMPTZ '2026-02-19 22:00:00+00'
  AND timestamp <  TIMESTAMPTZ '2026-02-20 06:00:00+00'
ORDER BY timestamp DESC;`,
})

export type MonitoringQueryName = keyof typeof MONITORING_QUERIES
