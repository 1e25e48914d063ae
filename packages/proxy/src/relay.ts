import type http from 'node:http'
import type { Response } from 'express'
import { gatehouseLocals, isInvalidCredentialAnswer, UsageMeter, type ProviderName } from '@gatehouse/core'
import { ProxyErrorCodes } from './errors'
import type { HeaderPolicy } from './headers'
import type { ProxyConfig, UpstreamCredential } from './options'
import { createStreamMasker, maskInjected, type InjectedSecrets } from './mask'
import { createUsageEventFilter, decompressorFor } from './metering'
import type { MadeObjectWatch } from './made'

/** Per-request proxy state, kept on the request (see FLIGHT). */
export interface Flight {
  readonly provider: ProviderName
  readonly credential: UpstreamCredential
  /** The secret values injected into this request: masked in everything relayed back. */
  readonly injected: InjectedSecrets
  readonly policy: HeaderPolicy
  /** The validated body to write, or undefined to forward the request stream. */
  readonly body: Buffer | undefined
  readonly inference: boolean
  proxyReq?: http.ClientRequest
  proxyRes?: http.IncomingMessage
  firstByteTimer?: NodeJS.Timeout
  connectTimer?: NodeJS.Timeout
  idleTimer?: NodeJS.Timeout
  done: boolean
  /** The gateway added include_usage to this stream: drop the usage-only event the client did not ask for. */
  stripUsageEvent?: boolean
  /** What the flush stage will do for this response: uncork it, or end it (batching only). */
  flush?: 'uncork' | 'end' | undefined
  /** What this request's answer makes (a response, a file, a container): its id is recorded as its client key's (references.ts). */
  made?: MadeObjectWatch
}

const MAX_ERROR_BODY = 256 * 1024
/** The largest JSON answer masked whole (and relayed with a Content-Length). */
const MAX_WHOLE_BODY = 1024 * 1024

export function clearTimers(f: Flight): void {
  if (f.firstByteTimer) clearTimeout(f.firstByteTimer)
  if (f.connectTimer) clearTimeout(f.connectTimer)
  if (f.idleTimer) clearTimeout(f.idleTimer)
}

/** Mask the exact values injected into this request, then every rule of the masker. */
export function maskRelayed(config: ProxyConfig, f: Flight, text: string): string {
  return config.masker.text(maskInjected(text, f.injected))
}

/**
 * Each response header once, lower-cased, with its value. Read from rawHeaders, so Node never
 * builds the headers object, unless a name repeats: then from that object, which joins or drops
 * the repeats by Node's rules (one Content-Length, Set-Cookie as a list).
 */
function forEachHeader(
  msg: http.IncomingMessage,
  fn: (name: string, value: string | string[]) => void,
): void {
  const raw = msg.rawHeaders
  const names: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (names.includes(name)) {
      const headers = msg.headers
      for (const n in headers) {
        const v = headers[n]
        if (v !== undefined) fn(n, v)
      }
      return
    }
    names.push(name)
  }
  for (let i = 0; i < names.length; i++) fn(names[i]!, raw[2 * i + 1]!)
}

/**
 * Copy the upstream's status and allowed headers to the client, masked against what was injected
 * (on every status: a provider may echo an account or key in any header). The provider's
 * `x-request-id` is relayed as it is; the gateway's own id is `x-gatehouse-request-id`.
 * A header the gateway's layers already set is the gateway's policy and stays: the upstream's
 * `Cache-Control: no-cache` never replaces `no-store`, and an account-wide `x-ratelimit-*` never
 * replaces the figures of the client key's own limits.
 */
export function relayHead(
  config: ProxyConfig,
  f: Flight,
  proxyRes: http.IncomingMessage,
  res: Response,
): { contentType?: string; encoded: boolean; encoding?: string } {
  let contentType: string | undefined
  let encoded = false
  let encoding: string | undefined
  forEachHeader(proxyRes, (name, value) => {
    if (!f.policy.relays(name)) return
    if (name === 'content-type') contentType = String(value)
    else if (name === 'content-encoding') {
      encoded = String(value) !== 'identity'
      encoding = String(value).trim().toLowerCase()
    } else if (name !== 'content-length' && res.hasHeader(name)) return // the body's own headers are always the upstream's
    res.setHeader(
      name,
      Array.isArray(value) ? value.map((v) => maskRelayed(config, f, v)) : maskRelayed(config, f, value),
    )
  })
  res.statusCode = proxyRes.statusCode ?? 502
  return {
    ...(contentType !== undefined ? { contentType } : {}),
    encoded,
    ...(encoding !== undefined ? { encoding } : {}),
  }
}

/**
 * An upstream error: read (bounded), masked, answered with a recomputed length. The credential is
 * taken out of rotation only on proof (the provider's invalid-key answer to a model call).
 */
export function relayError(
  config: ProxyConfig,
  f: Flight,
  proxyRes: http.IncomingMessage,
  res: Response,
  status: number,
): void {
  const chunks: Buffer[] = []
  let size = 0
  proxyRes.on('data', (c: Buffer) => {
    size += c.length
    if (size <= MAX_ERROR_BODY) chunks.push(c)
  })
  proxyRes.on('end', () => {
    f.done = true
    clearTimers(f)
    const text = Buffer.concat(chunks).toString('utf8')
    judgeCredential(config, f, status, text)
    const body = Buffer.from(maskRelayed(config, f, text))
    res.removeHeader('content-encoding')
    res.setHeader('content-length', body.length)
    res.end(body)
  })
}

function judgeCredential(config: ProxyConfig, f: Flight, status: number, text: string): void {
  let proof = false
  if (f.inference && (status === 401 || status === 400)) {
    try {
      proof = isInvalidCredentialAnswer(f.provider, status, JSON.parse(text))
    } catch {
      proof = false
    }
  }
  try {
    if (proof) f.credential.reject?.('invalid_credential')
    else f.credential.report?.(status)
  } catch (err) {
    config.logger.error('@gatehouse/proxy: credential report failed', {
      error: config.masker.text(String(err)),
    })
  }
}

/** Relay a success (or redirect) body chunk by chunk with backpressure, metering usage and cutting an idle stream. */
export function relayBody(
  config: ProxyConfig,
  f: Flight,
  proxyRes: http.IncomingMessage,
  res: Response,
  head: { contentType?: string; encoded: boolean; encoding?: string },
  flushLater: ((f: Flight, res: http.ServerResponse) => void) | undefined,
): void {
  try {
    f.credential.report?.(proxyRes.statusCode ?? 0)
  } catch (err) {
    config.logger.error('@gatehouse/proxy: credential report failed', {
      error: config.masker.text(String(err)),
    })
  }
  const meter = new UsageMeter(head.contentType)
  // An upstream that compressed anyway (the gateway asks for identity): meter a decompressed copy;
  // the client gets the bytes as they came.
  const inflate = head.encoded ? decompressorFor(head.encoding, meter) : undefined
  // A stream the gateway asked for usage on (include_usage): the usage-only event is metered, not
  // relayed. Only this path looks into the relayed events; a compressed stream is relayed as it came.
  const sse = head.contentType?.toLowerCase().includes('text/event-stream') === true
  const strip = f.stripUsageEvent && sse && !head.encoded ? createUsageEventFilter() : undefined
  // The body may quote the injected credential too: masked on the way, so its length may change.
  const masker = createStreamMasker(f.injected)
  // A JSON answer of a known, bounded length is masked whole and keeps a Content-Length (a client
  // reads it whole anyway); a stream, or an answer of unknown or large length, is masked on the way
  // and goes out chunked.
  const length = Number(res.getHeader('content-length'))
  const whole: Buffer[] | undefined = masker && !sse && length >= 0 && length <= MAX_WHOLE_BODY ? [] : undefined
  if (masker) res.removeHeader('content-length')
  const idleTimer = setTimeout(() => {
    config.logger.warn('upstream stream idle, closing', {
      provider: f.provider,
      request_id: gatehouseLocals(res).requestId,
      code: ProxyErrorCodes.GH_PROXY_UPSTREAM_IDLE,
    })
    f.done = true
    proxyRes.destroy()
    res.destroy()
  }, config.timeouts.idle)
  f.idleTimer = idleTimer
  let first = true
  if (sse) {
    // A stream's head goes to the client now, not with its first event (which may take seconds).
    // Under the flush stage it leaves with whatever else this turn writes, in one write.
    if (flushLater) {
      first = false
      res.cork()
      f.flush = 'uncork'
      flushLater(f, res)
    }
    res.flushHeaders()
  }
  // Relayed by hand rather than with pipe(): one 'data' listener does the relay, the meter and the
  // idle timer. A client that goes away ends the upstream response through the 'close' handler.
  const resume = (): void => void proxyRes.resume()
  // The parser hands over a chunked body one chunk at a time: an upstream that wrote ten SSE events
  // at once gives ten 'data' events in one go. The chunks of one go are relayed together at the end
  // of the turn (process.nextTick, before the stream's own 'end'), so that the meter, the usage
  // filter, the masker and the client's chunk framing run once per read rather than once per event.
  // Nothing waits for a later read: what arrived is relayed before the event loop moves on.
  let queued: Buffer[] = []
  let scheduled = false
  /** What every chunk goes through, relayed or kept whole: the idle timer and the meter. */
  const observe = (chunk: Buffer): void => {
    idleTimer.refresh()
    if (!head.encoded) {
      meter.push(chunk)
      f.made?.push(chunk)
    } else inflate?.push(chunk)
  }
  const relayQueued = (): void => {
    scheduled = false
    if (queued.length === 0) return
    const chunk = queued.length === 1 ? queued[0]! : Buffer.concat(queued)
    queued = []
    observe(chunk)
    if (res.destroyed) return
    const kept = strip ? strip.push(chunk) : chunk
    const out = masker ? masker.push(kept) : kept
    if (out.length === 0) return
    if (first && flushLater) {
      first = false
      res.cork()
      f.flush = 'uncork'
      flushLater(f, res)
    }
    if (!res.write(out)) {
      proxyRes.pause()
      res.once('drain', resume)
    }
  }
  proxyRes.on('data', (chunk: Buffer) => {
    if (whole) {
      observe(chunk)
      whole.push(chunk)
      return
    }
    queued.push(chunk)
    if (!scheduled) {
      scheduled = true
      process.nextTick(relayQueued)
    }
  })
  proxyRes.on('end', () => {
    relayQueued()
    f.done = true
    clearTimers(f)
    const finish = (): void => {
      // Set only for an answer read whole: a decompressor that gave up saw part of it.
      const usage = inflate && !inflate.ok ? undefined : meter.finish()
      if (usage) gatehouseLocals(res).usage = usage
      if (whole && masker) {
        const body = Buffer.concat([masker.push(Buffer.concat(whole)), masker.end()])
        res.setHeader('content-length', body.length)
        if (flushLater) {
          // Written now, ended by the flush stage with the rest of this turn's answers.
          res.cork()
          res.write(body)
          f.flush = 'end'
          flushLater(f, res)
        } else res.end(body)
        return
      }
      const tail = strip?.end()
      const rest = masker ? Buffer.concat([masker.push(tail ?? Buffer.alloc(0)), masker.end()]) : tail
      if (rest?.length) res.write(rest)
      // Still corked (it began this turn): the flush stage ends it, headers, body and end in one write.
      if (f.flush === 'uncork') f.flush = 'end'
      else res.end()
    }
    if (inflate) inflate.end(finish)
    else finish()
  })
}
