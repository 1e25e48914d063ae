import type { SchemaObject } from 'ajv'
import { str, nullable, num, int, whenType } from './helpers'

// Anthropic request bodies (messages, count_tokens, message batches), from Anthropic's API reference.

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
