import Ajv, { type SchemaObject, type ValidateFunction } from 'ajv'
import type { EndpointKind } from './endpoints'

/*
 * Request body schemas, from the providers' API references. They check the fields and types the
 * providers document and let unknown fields through: providers add fields often, and the upstream
 * still has the last word. Alternatives are written as type unions rather than anyOf, so the one
 * error ajv reports names the exact field.
 */

const str = { type: 'string' } as const
const nullable = (...types: string[]): { type: string[] } => ({ type: [...types, 'null'] })
const num = (min: number, max: number): SchemaObject => ({
  ...nullable('number'),
  minimum: min,
  maximum: max,
})
const int = (min: number, max?: number): SchemaObject => ({
  ...nullable('integer'),
  minimum: min,
  ...(max === undefined ? {} : { maximum: max }),
})
/** `if` the object's `type` is `value` `then` … (the discriminated blocks every provider uses). */
const whenType = (value: string, then: SchemaObject): SchemaObject => ({
  if: { required: ['type'], properties: { type: { const: value } } },
  then,
})
const whenRole = (roles: string[], then: SchemaObject): SchemaObject => ({
  if: { required: ['role'], properties: { role: { enum: roles } } },
  then,
})

// ---------------------------------------------------------------- OpenAI

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

// ---------------------------------------------------------------- Anthropic

const claudeSource = { type: 'object', required: ['type'], properties: { type: str } } as const

const claudeBlock: SchemaObject = {
  type: 'object',
  required: ['type'],
  properties: { type: str, cache_control: { ...nullable('object'), properties: { type: str } } },
  allOf: [
    whenType('text', { required: ['text'], properties: { text: str } }),
    whenType('image', { required: ['source'], properties: { source: claudeSource } }),
    whenType('document', { required: ['source'], properties: { source: claudeSource } }),
    whenType('tool_use', {
      required: ['id', 'name', 'input'],
      properties: { id: str, name: str, input: { type: 'object' } },
    }),
    whenType('tool_result', {
      required: ['tool_use_id'],
      properties: {
        tool_use_id: str,
        content: {
          type: ['string', 'array'],
          items: { type: 'object', required: ['type'], properties: { type: str } },
        },
        is_error: { type: 'boolean' },
      },
    }),
    whenType('thinking', { required: ['thinking'], properties: { thinking: str, signature: str } }),
    whenType('redacted_thinking', { required: ['data'], properties: { data: str } }),
  ],
}

const claudeMessage: SchemaObject = {
  type: 'object',
  required: ['role', 'content'],
  properties: {
    role: { enum: ['user', 'assistant'] },
    content: { type: ['string', 'array'], items: claudeBlock },
  },
}

const claudeProperties: Record<string, SchemaObject> = {
  model: { type: 'string', minLength: 1 },
  messages: { type: 'array', items: claudeMessage },
  max_tokens: { type: 'integer', minimum: 1 },
  system: {
    type: ['string', 'array'],
    items: { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: str } },
  },
  temperature: num(0, 1),
  top_p: num(0, 1),
  top_k: int(0),
  stop_sequences: { ...nullable('array'), items: str },
  stream: nullable('boolean'),
  metadata: { ...nullable('object'), properties: { user_id: nullable('string') } },
  tools: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name'],
      properties: { name: str, type: str, description: str, input_schema: { type: 'object' } },
    },
  },
  tool_choice: {
    type: 'object',
    required: ['type'],
    properties: { type: str, name: str, disable_parallel_tool_use: { type: 'boolean' } },
  },
  thinking: {
    type: 'object',
    required: ['type'],
    properties: { type: str, budget_tokens: { type: 'integer', minimum: 1 } },
  },
  service_tier: str,
}

export const claudeMessagesSchema: SchemaObject = {
  type: 'object',
  required: ['model', 'messages', 'max_tokens'],
  properties: claudeProperties,
}

export const claudeCountTokensSchema: SchemaObject = {
  type: 'object',
  required: ['model', 'messages'],
  properties: claudeProperties,
}

export const claudeBatchesSchema: SchemaObject = {
  type: 'object',
  required: ['requests'],
  properties: {
    requests: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['custom_id', 'params'],
        properties: { custom_id: str, params: claudeMessagesSchema },
      },
    },
  },
}

// ---------------------------------------------------------------- Gemini

/** proto3 JSON: an int32 may come as a number or as a string of digits. */
const protoInt = (min: number): SchemaObject => ({
  type: ['integer', 'string'],
  minimum: min,
  pattern: '^-?\\d+$',
})

const geminiContent: SchemaObject = {
  type: 'object',
  required: ['parts'],
  properties: { role: str, parts: { type: 'array', items: { type: 'object' } } },
}

const geminiGenerationConfig: SchemaObject = {
  type: 'object',
  properties: {
    maxOutputTokens: protoInt(1),
    max_output_tokens: protoInt(1),
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    topP: { type: 'number', minimum: 0, maximum: 1 },
    topK: { type: 'number', minimum: 0 },
    candidateCount: protoInt(1),
    candidate_count: protoInt(1),
    stopSequences: { type: 'array', items: str, maxItems: 5 },
    stop_sequences: { type: 'array', items: str, maxItems: 5 },
    responseMimeType: str,
    responseSchema: { type: 'object' },
    thinkingConfig: { type: 'object' },
  },
}

export const geminiGenerateSchema: SchemaObject = {
  type: 'object',
  required: ['contents'],
  properties: {
    contents: { type: 'array', items: geminiContent },
    systemInstruction: geminiContent,
    system_instruction: geminiContent,
    tools: { type: 'array', items: { type: 'object' } },
    toolConfig: { type: 'object' },
    tool_config: { type: 'object' },
    safetySettings: { type: 'array', items: { type: 'object' } },
    safety_settings: { type: 'array', items: { type: 'object' } },
    generationConfig: geminiGenerationConfig,
    generation_config: geminiGenerationConfig,
    cachedContent: str,
    cached_content: str,
  },
}

/** The body schema for each known endpoint. */
export const requestBodySchemas: Readonly<Record<Exclude<EndpointKind, 'generic'>, SchemaObject>> =
  Object.freeze({
    'openai.chat': openaiChatSchema,
    'openai.completions': openaiCompletionsSchema,
    'openai.embeddings': openaiEmbeddingsSchema,
    'openai.responses': openaiResponsesSchema,
    'claude.messages': claudeMessagesSchema,
    'claude.count_tokens': claudeCountTokensSchema,
    'claude.batches': claudeBatchesSchema,
    'gemini.generate': geminiGenerateSchema,
  })

export type BodyValidators = ReadonlyMap<EndpointKind, ValidateFunction>

/**
 * Compile every body schema once (per guard). Client input is validated without `$data` and
 * without `allErrors` (ajv stops at the first error), never coerces, never fills defaults.
 */
export function compileBodyValidators(): BodyValidators {
  const ajv = new Ajv({
    allErrors: false,
    $data: false,
    strictSchema: true,
    strictNumbers: true,
    strictTypes: true,
    strictTuples: true,
    // `if`/`then` blocks name fields that the outer schema declares; that is intended.
    strictRequired: false,
    allowUnionTypes: true,
    coerceTypes: false,
    useDefaults: false,
    removeAdditional: false,
    ownProperties: true,
    validateFormats: false,
    unicodeRegExp: true,
  })
  const out = new Map<EndpointKind, ValidateFunction>()
  for (const [kind, schema] of Object.entries(requestBodySchemas))
    out.set(kind as EndpointKind, ajv.compile(schema))
  return out
}
