import { isLoopback, type Logger } from '@gatehouse/core'
import { PKG, durationMs, invalid, type NotifyOptions } from './options'

export interface WebhookTarget {
  url: string
  retries: number
  retryDelayMs: number
  timeoutMs: number
}

/** `https://hooks.slack.com` for a URL: what may be logged of a webhook (the path is the secret). */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return '(invalid URL)'
  }
}

const NOT_HTTP = 'notify.webhookUrl must be an http(s) URL (the value is a secret and is not shown)'

/** The webhook of `notify:`, validated; undefined when no URL is set. The URL is never quoted in an error. */
export function resolveWebhook(notify: NotifyOptions | undefined): WebhookTarget | undefined {
  const url = notify?.webhookUrl
  if (url === undefined || url === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw invalid(NOT_HTTP)
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalid(NOT_HTTP)
  return {
    url,
    retries: notify?.retries ?? 4,
    retryDelayMs: durationMs(notify?.retryDelay ?? '500ms', 'notify.retryDelay'),
    timeoutMs: durationMs(notify?.timeout ?? '5s', 'notify.timeout'),
  }
}

/** Whether the webhook is reached in plain http over the network (loopback is exempt). */
export function isPlainHttpOffLoopback(target: WebhookTarget): boolean {
  const url = new URL(target.url)
  return url.protocol === 'http:' && !isLoopback(url.hostname.replace(/^\[|\]$/g, ''))
}

/** A short, secret-free name for a fetch failure: TimeoutError, ECONNREFUSED, … */
const describe = (err: unknown): string => {
  if (err === null || typeof err !== 'object') return 'error'
  const e = err as { name?: unknown; cause?: { code?: unknown } }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return e.name
  if (e.cause && typeof e.cause.code === 'string') return e.cause.code
  return typeof e.name === 'string' ? e.name : 'error'
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve()
      return
    }
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    timer.unref()
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * POST a Slack-compatible message (`{"text": …}`) to the webhook. Retries network errors,
 * timeouts, 429 and 5xx up to `retries` times with exponential backoff (retryDelay, ×2, ×4…);
 * does not follow redirects. Never throws; resolves true once delivered. Only the URL's origin is
 * ever logged: the rest of a webhook URL is a credential.
 */
export async function postWebhook(
  target: WebhookTarget,
  payload: { text: string },
  logger: Logger,
  signal: AbortSignal,
): Promise<boolean> {
  const origin = webhookOrigin(target.url)
  const body = JSON.stringify(payload)
  let last = ''
  for (let attempt = 0; attempt <= target.retries; attempt++) {
    if (signal.aborted) break
    if (attempt > 0) {
      await pause(target.retryDelayMs * 2 ** (attempt - 1), signal)
      if (signal.aborted) break
    }
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'gatehouse-alerts' },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([signal, AbortSignal.timeout(target.timeoutMs)]),
      })
      await res.body?.cancel().catch(() => undefined)
      if (res.status >= 200 && res.status < 300) {
        if (attempt > 0) logger.info(`${PKG}: alert delivered after ${attempt} retr${attempt === 1 ? 'y' : 'ies'}`, { webhook: origin })
        return true
      }
      last = `HTTP ${res.status}`
      if (res.status !== 429 && res.status < 500) break // a 3xx or 4xx will not get better by retrying
    } catch (err) {
      last = describe(err)
    }
    logger.warn(`${PKG}: alert delivery failed (${last})`, { webhook: origin, attempt: attempt + 1 })
  }
  logger.error(`${PKG}: alert not delivered (${last || 'shut down'})`, { webhook: origin })
  return false
}
