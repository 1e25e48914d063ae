import type http from 'node:http'
import { randomBytes } from 'node:crypto'
import type { UpstreamBehaviour } from './mock-upstream'
import { sleep } from './wait'

/** The mock upstream's SSE streams, event for event as each provider writes them. */

/** Writes events; honours interval, stall and drop (a stream cut short simply stops). */
async function writeStream(
  res: http.ServerResponse,
  head: string[],
  content: string[],
  tail: string[],
  b: UpstreamBehaviour,
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  res.flushHeaders()
  for (const e of head) res.write(e)
  for (let i = 0; i < content.length; i++) {
    if (b.dropAfterChunks !== undefined && i >= b.dropAfterChunks) {
      res.socket?.destroy()
      return
    }
    if (b.stallAfterChunks !== undefined && i >= b.stallAfterChunks) return
    if (i > 0 && b.chunkIntervalMs) await sleep(b.chunkIntervalMs)
    if (res.destroyed) return
    res.write(content[i])
  }
  for (const e of tail) res.write(e)
  res.end()
}

/** Anthropic's messages stream: message_start (prompt usage), the deltas, message_delta (output usage). */
export async function anthropicStream(
  res: http.ServerResponse,
  model: string,
  n: number,
  input: number,
  output: number,
  b: UpstreamBehaviour,
): Promise<void> {
  const ev = (type: string, data: unknown): string => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`
  const id = `msg_${randomBytes(8).toString('hex')}`
  await writeStream(
    res,
    [
      ev('message_start', {
        type: 'message_start',
        message: {
          id,
          type: 'message',
          role: 'assistant',
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: input, output_tokens: 1 },
        },
      }),
      ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ev('ping', { type: 'ping' }),
    ],
    Array.from({ length: n }, (_, i) =>
      ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: `chunk${i} ` } }),
    ),
    [
      ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
      ev('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: 'end_turn', stop_sequence: null },
        usage: { output_tokens: output },
      }),
      ev('message_stop', { type: 'message_stop' }),
    ],
    b,
  )
}

/** OpenAI's chat stream, with `usage: null` on each chunk and a final usage chunk when include_usage is set. */
export async function openaiStream(
  res: http.ServerResponse,
  model: string,
  n: number,
  input: number,
  output: number,
  includeUsage: boolean,
  b: UpstreamBehaviour,
): Promise<void> {
  const id = `chatcmpl-${randomBytes(8).toString('hex')}`
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta: unknown, finish: string | null, usage?: unknown): string =>
    `data: ${JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: delta === null ? [] : [{ index: 0, delta, finish_reason: finish }],
      ...(usage !== undefined ? { usage } : includeUsage ? { usage: null } : {}),
    })}\n\n`
  const tail = [chunk({}, 'stop')]
  if (includeUsage) tail.push(chunk(null, null, { prompt_tokens: input, completion_tokens: output, total_tokens: input + output }))
  tail.push('data: [DONE]\n\n')
  await writeStream(
    res,
    [chunk({ role: 'assistant', content: '' }, null)],
    Array.from({ length: n }, (_, i) => chunk({ content: `chunk${i} ` }, null)),
    tail,
    b,
  )
}

/** Gemini's streamGenerateContent (`alt=sse`), usageMetadata on every chunk, the total on the last. */
export async function geminiStream(
  res: http.ServerResponse,
  n: number,
  input: number,
  output: number,
  b: UpstreamBehaviour,
): Promise<void> {
  const data = (i: number, last: boolean): string =>
    `data: ${JSON.stringify({
      candidates: [
        { content: { role: 'model', parts: [{ text: `chunk${i} ` }] }, ...(last ? { finishReason: 'STOP' } : {}), index: 0 },
      ],
      usageMetadata: last
        ? { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output }
        : { promptTokenCount: input },
    })}\r\n\r\n`
  await writeStream(res, [], Array.from({ length: n }, (_, i) => data(i, i === n - 1)), [], b)
}
