import type { SchemaObject } from 'ajv'
import { str, nullable, num, int, whenType, whenRole } from './helpers'

// OpenAI request bodies (chat, completions, embeddings, responses), from OpenAI's API reference.

const openaiContentPart: SchemaObject = {
  type: 'object',
  required: ['type'],
  properties: { type: str },
  allOf: [
    whenType('text', { required: ['text'], properties: { text: str } }),
    whenType('image_url', {
      required: ['image_url'],
      properties: { image_url: { type: 'object', required: ['url'], properties: { url: str, detail: str } } },
    }),
    whenType('input_audio', {
      required: ['input_audio'],
      properties: {
        input_audio: { type: 'object', required: ['data', 'format'], properties: { data: str, format: str } },
      },
    }),
    whenType('file', { required: ['file'], properties: { file: { type: 'object' } } }),
    whenType('refusal', { required: ['refusal'], properties: { refusal: str } }),
  ],
}

const openaiMessage: SchemaObject = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
    content: { type: ['string', 'array', 'null'], items: openaiContentPart },
    name: str,
    tool_calls: {
      ...nullable('array'),
      items: {
        type: 'object',
        required: ['id', 'type', 'function'],
        properties: {
          id: str,
          type: str,
          function: { type: 'object', required: ['name'], properties: { name: str, arguments: str } },
        },
      },
    },
    tool_call_id: str,
    refusal: nullable('string'),
  },
  allOf: [
    whenRole(['system', 'developer', 'user', 'function'], { required: ['content'] }),
    whenRole(['tool'], { required: ['content', 'tool_call_id'] }),
  ],
}

const openaiTool: SchemaObject = {
  type: 'object',
  required: ['type'],
  properties: {
    type: str,
    function: {
      type: 'object',
      required: ['name'],
      properties: {
        name: str,
        description: str,
        parameters: { type: 'object' },
        strict: nullable('boolean'),
      },
    },
  },
  allOf: [whenType('function', { required: ['function'] })],
}

const openaiSampling: Record<string, SchemaObject> = {
  temperature: num(0, 2),
  top_p: num(0, 1),
  n: int(1, 128),
  stream: nullable('boolean'),
  stream_options: { ...nullable('object'), properties: { include_usage: { type: 'boolean' } } },
  stop: { type: ['string', 'array', 'null'], items: str, maxItems: 4 },
  presence_penalty: num(-2, 2),
  frequency_penalty: num(-2, 2),
  logit_bias: {
    ...nullable('object'),
    additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
  },
  seed: nullable('integer'),
  user: str,
}

export const openaiChatSchema: SchemaObject = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: { type: 'array', minItems: 1, items: openaiMessage },
    max_tokens: int(1),
    max_completion_tokens: int(1),
    ...openaiSampling,
    logprobs: nullable('boolean'),
    top_logprobs: int(0, 20),
    tools: { type: 'array', items: openaiTool },
    tool_choice: { type: ['string', 'object'] },
    parallel_tool_calls: { type: 'boolean' },
    response_format: { type: 'object', required: ['type'], properties: { type: str } },
    metadata: { ...nullable('object'), additionalProperties: str },
    store: nullable('boolean'),
    reasoning_effort: nullable('string'),
    service_tier: nullable('string'),
    modalities: { ...nullable('array'), items: str },
    audio: nullable('object'),
    prediction: nullable('object'),
  },
}

export const openaiCompletionsSchema: SchemaObject = {
  type: 'object',
  required: ['model'],
  properties: {
    model: { type: 'string', minLength: 1 },
    prompt: { type: ['string', 'array', 'null'] },
    // max_tokens 0 with echo is how clients score a prompt, so 0 is valid here.
    max_tokens: int(0),
    ...openaiSampling,
    logprobs: int(0, 5),
    echo: nullable('boolean'),
    best_of: int(0, 20),
    suffix: nullable('string'),
  },
}

export const openaiEmbeddingsSchema: SchemaObject = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    input: { type: ['string', 'array'] },
    encoding_format: str,
    dimensions: { type: 'integer', minimum: 1 },
    user: str,
  },
}

export const openaiResponsesSchema: SchemaObject = {
  type: 'object',
  properties: {
    model: { type: 'string', minLength: 1 },
    input: { type: ['string', 'array'] },
    instructions: nullable('string', 'array'),
    max_output_tokens: int(1),
    temperature: num(0, 2),
    top_p: num(0, 1),
    stream: nullable('boolean'),
    tools: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str } } },
    tool_choice: { type: ['string', 'object'] },
    parallel_tool_calls: nullable('boolean'),
    previous_response_id: nullable('string'),
    metadata: { ...nullable('object'), additionalProperties: str },
    store: nullable('boolean'),
    background: nullable('boolean'),
    include: { ...nullable('array'), items: str },
    reasoning: nullable('object'),
    text: { type: 'object' },
    truncation: nullable('string'),
    user: str,
  },
}
