/**
 * Where a Gemini batch (`models/<model>:batchGenerateContent`) keeps its inline requests:
 * `batch.input_config.requests.requests[i].request`. Gemini reads proto3 JSON, so the input config
 * may be spelt `input_config` or `inputConfig`. Read by request-guard (caps) and client-auth (the
 * models a request names): one walk, so a spelling one of them knows the other cannot miss.
 */
export const GEMINI_BATCH_INPUT_KEYS = ['input_config', 'inputConfig'] as const

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/** One inline request of a Gemini batch, and the path to it from the body. */
export interface GeminiBatchRequest {
  path: (string | number)[]
  request: Record<string, unknown>
}

/** The inline requests of a Gemini batch body, under either spelling of its input config. */
export function geminiBatchRequests(body: Record<string, unknown>): GeminiBatchRequest[] {
  const out: GeminiBatchRequest[] = []
  const batch = body.batch
  if (!isObject(batch)) return out
  for (const key of GEMINI_BATCH_INPUT_KEYS) {
    const cfg = batch[key]
    const requests = Object.prototype.hasOwnProperty.call(batch, key) && isObject(cfg) && isObject(cfg.requests) ? cfg.requests.requests : undefined
    if (!Array.isArray(requests)) continue
    requests.forEach((entry: unknown, i) => {
      if (isObject(entry) && isObject(entry.request)) out.push({ path: ['batch', key, 'requests', 'requests', i, 'request'], request: entry.request })
    })
  }
  return out
}
