import { Agent, request } from 'node:https'
import { QueuedSink, type SinkHooks } from './base'
import type { HttpsSinkConfig } from './config'

const MAX_BATCH_BYTES = 1024 * 1024
/** Statuses that say the content itself is refused: retrying the same batch cannot help. */
const REFUSED = new Set([400, 413, 422])

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

/**
 * Ships audit lines to an HTTPS collector: POSTs of up to `batchSize` lines (`application/x-ndjson`,
 * one audit line each, exactly as in the file), one request at a time so the order holds. A batch
 * is removed only on a 2xx; network errors, timeouts, 408, 429 and 5xx retry it with backoff.
 */
export class HttpsSink extends QueuedSink {
  private busy = false
  private ok = false
  private linger: NodeJS.Timeout | undefined
  private readonly agent: Agent

  constructor(
    private readonly hc: HttpsSinkConfig,
    hooks: SinkHooks,
  ) {
    super(hc, hooks)
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, minVersion: 'TLSv1.2', ...hc.tls })
  }

  protected wake(): void {
    if (this.stopped || this.waiting || this.busy) return
    if (this.carry.length === 0 && this.queue.length === 0) return
    if (
      this.carry.length === 0 &&
      this.queue.length < this.hc.batchSize &&
      !this.closing &&
      this.hc.flushIntervalMs > 0
    ) {
      if (this.linger === undefined) {
        this.linger = setTimeout(() => {
          this.linger = undefined
          this.kick(() => this.send())
        }, this.hc.flushIntervalMs)
        this.linger.unref()
      }
      return
    }
    this.send()
  }

  protected idle(): boolean {
    return !this.busy && this.carry.length === 0 && this.queue.length === 0
  }

  protected isConnected(): boolean {
    return this.ok
  }

  protected shutdown(): Promise<void> {
    if (this.linger !== undefined) clearTimeout(this.linger)
    this.agent.destroy()
    return Promise.resolve()
  }

  private send(): void {
    if (this.linger !== undefined) {
      clearTimeout(this.linger)
      this.linger = undefined
    }
    if (this.stopped || this.waiting || this.busy) return
    if (this.carry.length === 0) this.carry = this.queue.take(this.hc.batchSize, MAX_BATCH_BYTES)
    if (this.carry.length === 0) return
    const batch = this.carry
    const body = Buffer.from(`${batch.join('\n')}\n`, 'utf8')
    this.busy = true
    let done = false
    const finish = (outcome: 'sent' | 'refused' | 'retry', what?: string, after?: number): void => {
      if (done) return
      done = true
      this.busy = false
      if (outcome === 'sent' || outcome === 'refused') {
        this.carry = []
        this.ok = outcome === 'sent'
        if (outcome === 'sent') {
          this.sent += batch.length
          this.succeeded()
        } else {
          this.drop(batch.length, 'rejected')
          this.fail(
            'GH_AUDIT_SINK_REJECTED',
            `the collector refused a batch of ${batch.length} line(s) (${what}); it was dropped`,
          )
        }
        this.kick()
        return
      }
      this.ok = false
      this.failed(what ?? 'the request failed', after)
    }
    const url = this.hc.url
    const req = request(
      url,
      {
        method: 'POST',
        agent: this.agent,
        timeout: this.hc.timeoutMs,
        headers: {
          ...this.hc.headers,
          'content-type': 'application/x-ndjson',
          'content-length': body.length,
        },
      },
      (res) => {
        res.resume()
        const status = res.statusCode ?? 0
        const settle = (): void => {
          if (status >= 200 && status < 300) finish('sent')
          else if (REFUSED.has(status)) finish('refused', `HTTP ${status}`)
          else
            finish('retry', `${url.host} answered HTTP ${status}`, retryAfterMs(res.headers['retry-after']))
        }
        res.once('end', settle)
        res.once('error', () => finish('retry', `the response from ${url.host} was cut off`))
      },
    )
    req.once('timeout', () => req.destroy(new Error(`no answer within ${this.hc.timeoutMs} ms`)))
    req.once('error', (err: NodeJS.ErrnoException) =>
      finish('retry', `cannot POST to ${url.host} (${err.code ?? err.message})`),
    )
    req.end(body)
  }
}
