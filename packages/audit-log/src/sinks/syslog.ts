import { hostname as osHostname } from 'node:os'
import { isIP } from 'node:net'
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { QueuedSink, type SinkHooks } from './base'
import type { SyslogSinkConfig } from './config'

/** RFC 5424 severities by what a line records. */
const SEVERITY: Record<string, number> = { security_violation: 4, auth_failure: 5, checkpoint: 5 }
const INFO = 6
const EVENT_TYPE = /^\{"timestamp":"([^"]{1,40})","(?:event_type":"([a-z_]{1,32})"|(checkpoint)")/
const PRINTABLE = /[^\x21-\x7e]/g

/**
 * One audit line as an RFC 5425 frame: `LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`,
 * LEN the octet count of the syslog message. MSG is the audit line exactly as the file has it.
 */
export function syslogFrame(
  line: string,
  facility: number,
  hostname: string,
  appName: string,
  pid: number,
): Buffer {
  const m = EVENT_TYPE.exec(line)
  const msgid = m?.[2] ?? m?.[3] ?? '-'
  const timestamp = m?.[1] ?? new Date().toISOString()
  const pri = facility * 8 + (SEVERITY[msgid] ?? INFO)
  const message = Buffer.from(
    `<${pri}>1 ${timestamp} ${hostname} ${appName} ${pid} ${msgid} - ${line}`,
    'utf8',
  )
  return Buffer.concat([Buffer.from(`${message.length} `, 'ascii'), message])
}

interface Written {
  line: string
  at: number
}

/**
 * Ships audit lines to a syslog receiver over TLS, one connection, in order. Syslog has no
 * acknowledgements: a line handed to a connection that then ends unexpectedly may never have been
 * read, so the lines written in the last `resendWindow` are sent again on the next connection
 * (at-least-once; duplicates carry the same seq and hash).
 */
export class SyslogSink extends QueuedSink {
  private socket: TLSSocket | undefined
  private ready = false
  private recent: Written[] = []
  /** Last time the socket had nothing buffered: lines written since are not known to have left. */
  private flowingAt = 0
  private readonly hostname: string
  private readonly tlsOptions: ConnectionOptions

  constructor(
    private readonly sc: SyslogSinkConfig,
    hooks: SinkHooks,
  ) {
    super(sc, hooks)
    this.hostname = (sc.hostname ?? osHostname()).replace(PRINTABLE, '').slice(0, 255) || '-'
    const servername = sc.servername ?? (isIP(sc.host) === 0 ? sc.host : undefined)
    this.tlsOptions = {
      host: sc.host,
      port: sc.port,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      ...(servername !== undefined ? { servername } : {}),
      ...sc.tls,
    }
  }

  protected wake(): void {
    if (this.stopped || this.waiting) return
    if (this.queue.length === 0 && this.carry.length === 0) return
    if (!this.socket) this.connect()
    else if (this.ready) this.pump()
  }

  protected idle(): boolean {
    return this.queue.length === 0 && this.carry.length === 0 && (this.socket?.writableLength ?? 0) === 0
  }

  protected isConnected(): boolean {
    return this.ready
  }

  protected async shutdown(): Promise<void> {
    const socket = this.socket
    if (!socket) return
    this.socket = undefined
    this.ready = false
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy()
        resolve()
      }, 1000)
      timer.unref()
      socket.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      socket.end()
    })
  }

  private connect(): void {
    const socket = connect(this.tlsOptions)
    this.socket = socket
    socket.setNoDelay(true)
    socket.setTimeout(this.sc.connectTimeoutMs, () => {
      if (!this.ready) socket.destroy(new Error(`no TLS connection within ${this.sc.connectTimeoutMs} ms`))
    })
    let lastError: Error | undefined
    socket.on('error', (err) => (lastError = err))
    socket.once('secureConnect', () => {
      socket.setTimeout(0)
      socket.setKeepAlive(true, 30_000)
      this.ready = true
      this.succeeded()
      this.pump()
    })
    socket.on('drain', () => {
      this.flowingAt = Date.now()
      this.pump()
    })
    // A receiver speaks only to close: read and ignore anything it sends.
    socket.on('data', () => undefined)
    socket.once('close', () => {
      if (this.socket !== socket) return // closed by shutdown()
      const wasReady = this.ready
      this.socket = undefined
      this.ready = false
      const again = this.requeueRecent()
      // A receiver may close an idle connection: nothing was in doubt, the next line reconnects.
      if (wasReady && !lastError && again === 0) {
        if (this.carry.length > 0 || this.queue.length > 0) this.kick()
        return
      }
      const why = lastError
        ? `${(lastError as NodeJS.ErrnoException).code ?? lastError.message}`
        : 'closed by the receiver'
      this.failed(
        wasReady
          ? `the connection to ${this.sc.host}:${this.sc.port} ended (${why})`
          : `cannot connect to ${this.sc.host}:${this.sc.port} (${why})`,
      )
    })
  }

  /** Write queued lines until the socket pushes back. */
  private pump(): void {
    const socket = this.socket
    if (!socket || !this.ready) return
    const now = Date.now()
    this.prune(now, socket)
    const carried = this.carry
    this.carry = []
    for (let i = 0; i < carried.length; i++) {
      if (!this.write(socket, carried[i]!, now)) {
        this.carry = carried.slice(i + 1)
        return
      }
    }
    while (this.queue.length > 0) if (!this.write(socket, this.queue.shift()!, now)) return
    if (socket.writableLength === 0) this.flowingAt = now
  }

  /** Write one line; false when the socket asks to wait for 'drain'. */
  private write(socket: TLSSocket, line: string, now: number): boolean {
    this.recent.push({ line, at: now })
    this.sent++
    return socket.write(syslogFrame(line, this.sc.facility, this.hostname, this.sc.appName, process.pid))
  }

  /** Forget lines old enough to be past the resend window (and handed to the kernel). */
  private prune(now: number, socket: TLSSocket): void {
    if (socket.writableLength > 0) return
    this.flowingAt = now
    const cut = now - this.sc.resendWindowMs
    let i = 0
    while (i < this.recent.length && this.recent[i]!.at < cut) i++
    const over = this.recent.length - i - this.cfg.maxQueue
    if (i > 0 || over > 0) this.recent = this.recent.slice(i + Math.max(0, over))
  }

  /** The connection ended under us: the lines of its last moments go out again first. */
  private requeueRecent(): number {
    // The window ends when the socket last had nothing buffered: what was written after is in doubt.
    const cut = Math.min(Date.now(), this.flowingAt) - this.sc.resendWindowMs
    const again = this.recent.filter((w) => w.at >= cut).map((w) => w.line)
    this.recent = []
    if (again.length === 0) return 0
    this.resent += again.length
    this.sent -= again.length
    this.carry = [...again, ...this.carry]
    return again.length
  }
}
