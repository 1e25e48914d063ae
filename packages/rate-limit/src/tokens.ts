import type { Readable } from 'node:stream'
import type { Request, Response } from 'express'
import { gatehouseLocals, UsageMeter, type TokenUsage } from '@gatehouse/core'

/** The tokens a request may use, reserved at admission. */
export interface TokenEstimate {
  /** Prompt size: body bytes / 4, rounded up. */
  promptTokens: number
  /** The request's own output cap, or the default. */
  maxOutputTokens: number
  /** promptTokens + maxOutputTokens. */
  total: number
}

/** No estimate grows past this, whatever a client writes in max_tokens. */
const ESTIMATE_CAP = 1e12
const BODYLESS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE'])
const NO_OUTPUT = /embed|count_?tokens|counttokens/i

const nonNegativeInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(Math.ceil(v), ESTIMATE_CAP) : undefined

function outputCap(body: Record<string, unknown>): number | undefined {
  const generationConfig = body.generationConfig
  return (
    nonNegativeInt(body.max_tokens) ??
    nonNegativeInt(body.max_completion_tokens) ??
    nonNegativeInt(body.max_output_tokens) ??
    (generationConfig !== null && typeof generationConfig === 'object'
      ? nonNegativeInt((generationConfig as Record<string, unknown>).maxOutputTokens)
      : undefined)
  )
}

/**
 * Estimate a request's tokens without reading its stream: the prompt is the body's size / 4 (the
 * Content-Length, or the parsed body re-serialised when a body parser ran and the length is
 * unknown), the output is the request's `max_tokens` (`max_completion_tokens`,
 * `max_output_tokens`, Gemini's `generationConfig.maxOutputTokens`) when a parsed body carries one,
 * else `defaultMaxTokens`. Requests without a body (GET /v1/models) and embedding or token-count
 * calls reserve no output.
 */
export function estimateTokens(req: Request, defaultMaxTokens: number): TokenEstimate {
  if (BODYLESS.has(req.method)) return { promptTokens: 0, maxOutputTokens: 0, total: 0 }
  const body: unknown = req.body
  const parsed =
    body !== null && typeof body === 'object' && !Buffer.isBuffer(body)
      ? (body as Record<string, unknown>)
      : undefined
  let bytes = Number(req.headers['content-length'])
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    if (parsed) bytes = Buffer.byteLength(JSON.stringify(parsed))
    else if (Buffer.isBuffer(body)) bytes = body.length
    else if (typeof body === 'string') bytes = Buffer.byteLength(body)
    else bytes = 0
  }
  const promptTokens = Math.ceil(bytes / 4)
  const maxOutputTokens = NO_OUTPUT.test(req.path)
    ? 0
    : ((parsed ? outputCap(parsed) : undefined) ?? defaultMaxTokens)
  return { promptTokens, maxOutputTokens, total: Math.min(promptTokens + maxOutputTokens, ESTIMATE_CAP) }
}

/** Tokens the provider reported for this response, when it reported any. */
export function reportedUsage(res: Response): number | undefined {
  const usage = gatehouseLocals(res).usage
  if (!usage) return undefined
  const input =
    typeof usage.inputTokens === 'number' && Number.isFinite(usage.inputTokens)
      ? usage.inputTokens
      : undefined
  const output =
    typeof usage.outputTokens === 'number' && Number.isFinite(usage.outputTokens)
      ? usage.outputTokens
      : undefined
  if (input === undefined && output === undefined) return undefined
  return Math.max(0, Math.ceil((input ?? 0) + (output ?? 0)))
}

/**
 * For apps that proxy the provider themselves: watch the upstream response body as it passes (the
 * chunks are neither held nor delayed) and, when it ends, record the usage the provider reported in
 * `res.locals.gatehouse.usage`, where tokenLimit() and quota() settle their reservations. Call it
 * before piping `upstream` into `res`.
 */
export function meterUpstreamUsage(res: Response, upstream: Readable, contentType?: string): UsageMeter {
  const type =
    contentType ?? (upstream as Readable & { headers?: Record<string, unknown> }).headers?.['content-type']
  const meter = new UsageMeter(typeof type === 'string' ? type : undefined)
  const onData = (chunk: Buffer | string): void => meter.push(chunk)
  upstream.on('data', onData)
  upstream.once('end', () => {
    upstream.off('data', onData)
    const usage: TokenUsage | undefined = meter.finish()
    if (usage) gatehouseLocals(res).usage = usage
  })
  return meter
}
