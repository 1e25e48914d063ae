import { GatehouseError, type Logger } from '@gatehouse/core'
import { AuditLogErrorCodes, type AuditLogErrorCode } from '../errors'
import type { AuditSinkConfig } from './config'
import type { AuditSinkDrop } from './options'
import { LineQueue } from './queue'

const PKG = '@gatehouse/audit-log'

/** Counters of one sink. */
export interface AuditSinkStats {
  name: string
  type: 'syslog' | 'https'
  /** Lines waiting: queued, or taken for a send that has not succeeded yet. */
  queued: number
  /** Lines delivered: written to a TLS connection (syslog) or acknowledged with a 2xx (https). */
  sent: number
  /** Syslog: lines sent again after a connection ended unexpectedly (the receiver may see them twice). */
  resent: number
  /** Lines given up (see `onDrop`). */
  dropped: number
  /** Failed connection attempts or sends. */
  failures: number
  /** A connection is up (syslog) or the last request succeeded (https). */
  connected: boolean
}

export interface SinkHooks {
  /** A failure: logged at error and passed to onWriteError. */
  report(err: GatehouseError, meta: Record<string, unknown>): void
  logger: Logger
}

/**
 * What both sinks share: the bounded queue and its drop accounting, exponential backoff, failure
 * reports (once per episode), and a close() that drains for a bounded time.
 */
export abstract class QueuedSink {
  protected readonly queue: LineQueue
  /** Lines taken off the queue, to be (re)delivered before it. */
  protected carry: string[] = []
  protected sent = 0
  protected resent = 0
  protected dropped = 0
  protected failures = 0
  /** close() was called: no new lines, the queue drains. */
  protected closing = false
  /** close() gave up or finished: no more attempts. */
  protected stopped = false
  private retryTimer: NodeJS.Timeout | undefined
  private wakeup: NodeJS.Immediate | undefined
  private attempt = 0
  private failing = false
  private fullReported = false

  constructor(
    protected readonly cfg: AuditSinkConfig,
    protected readonly hooks: SinkHooks,
  ) {
    this.queue = new LineQueue(cfg.maxQueue)
  }

  get name(): string {
    return this.cfg.name
  }

  /** Queue the lines of one write, in order. O(1) a line; never throws, never waits. */
  push(lines: readonly string[]): void {
    if (this.closing) {
      this.drop(lines.length, 'closed')
      return
    }
    for (const line of lines) {
      if (this.queue.push(line, this.cfg.overflow) === undefined) continue
      this.drop(1, 'queue_full')
      if (!this.fullReported) {
        this.fullReported = true
        this.fail(
          AuditLogErrorCodes.GH_AUDIT_SINK_QUEUE_FULL,
          `its queue is full (${this.cfg.maxQueue} lines); lines are dropped (${this.cfg.overflow})`,
        )
      }
    }
    // Sending starts after the writer's turn: its write path pays for the queueing alone.
    if (this.retryTimer === undefined && this.wakeup === undefined) {
      this.wakeup = setImmediate(() => {
        this.wakeup = undefined
        this.kick()
      })
    }
  }

  stats(): AuditSinkStats {
    return {
      name: this.cfg.name,
      type: this.cfg.type,
      queued: this.queue.length + this.carry.length,
      sent: this.sent,
      resent: this.resent,
      dropped: this.dropped,
      failures: this.failures,
      connected: this.isConnected(),
    }
  }

  /** Stop taking lines, try to deliver what is queued for `closeTimeout`, then drop the rest. Never rejects. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.retryTimer !== undefined) {
      // The last chance: try now rather than after the backoff.
      clearTimeout(this.retryTimer)
      this.retryTimer = undefined
    }
    this.kick()
    const until = Date.now() + this.cfg.closeTimeoutMs
    while (!this.idle() && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
    this.stopped = true
    if (this.wakeup !== undefined) clearImmediate(this.wakeup)
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer)
      this.retryTimer = undefined
    }
    await this.shutdown()
    const left = this.queue.length + this.carry.length
    this.carry = []
    while (this.queue.length > 0) this.queue.shift()
    if (left > 0) {
      this.drop(left, 'closed')
      this.hooks.report(
        new GatehouseError(
          AuditLogErrorCodes.GH_AUDIT_SINK_CLOSED,
          `${PKG}: audit sink ${this.cfg.name}: ${left} line(s) were not delivered before close`,
          503,
        ),
        { sink: this.cfg.name, dropped: left },
      )
    }
  }

  /** wake() (or `step`) from a timer: a throw there would take the process down, so it becomes a failure. */
  protected kick(step: () => void = () => this.wake()): void {
    try {
      step()
    } catch (err) {
      this.failed(`cannot send (${err instanceof Error ? err.message : String(err)})`)
    }
  }

  /** Start or continue delivery (called after a push, a retry delay, or a reconnect). */
  protected abstract wake(): void
  /** Nothing queued and nothing in flight. */
  protected abstract idle(): boolean
  protected abstract isConnected(): boolean
  /** Close connections at the end of close(). */
  protected abstract shutdown(): Promise<void>

  protected get waiting(): boolean {
    return this.retryTimer !== undefined
  }

  protected drop(count: number, reason: AuditSinkDrop['reason']): void {
    if (count <= 0) return
    this.dropped += count
    const onDrop = this.cfg.onDrop
    if (!onDrop) return
    try {
      onDrop({ sink: this.cfg.name, count, reason })
    } catch (err) {
      this.hooks.logger.error(`${PKG}: onDrop threw`, {
        sink: this.cfg.name,
        error: err instanceof Error ? err.message : String(err),
      })
    }
  }

  protected fail(code: AuditLogErrorCode, what: string): void {
    this.hooks.report(new GatehouseError(code, `${PKG}: audit sink ${this.cfg.name}: ${what}`, 503), {
      sink: this.cfg.name,
      queued: this.queue.length + this.carry.length,
    })
  }

  /** A connect or send failed: report it once per episode, then retry after a backoff. */
  protected failed(what: string, retryAfterMs?: number): void {
    this.failures++
    if (!this.failing) {
      this.failing = true
      this.fail(AuditLogErrorCodes.GH_AUDIT_SINK_UNREACHABLE, `${what}; lines are queued and retried`)
    }
    if (this.stopped) return
    const base = Math.min(this.cfg.retryIntervalMs * 2 ** this.attempt, this.cfg.maxRetryIntervalMs)
    this.attempt = Math.min(this.attempt + 1, 30)
    // Jitter, so gateways that lost one collector together do not come back in step.
    const delay = retryAfterMs ?? Math.round(base * (0.8 + Math.random() * 0.4))
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined
        this.kick()
      },
      Math.min(delay, this.cfg.maxRetryIntervalMs),
    )
    this.retryTimer.unref()
  }

  protected succeeded(): void {
    this.attempt = 0
    this.fullReported = false
    if (!this.failing) return
    this.failing = false
    this.hooks.logger.warn(`${PKG}: audit sink ${this.cfg.name} delivers again`, {
      sink: this.cfg.name,
      dropped: this.dropped,
    })
  }
}
