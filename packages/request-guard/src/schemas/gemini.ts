import type { SchemaObject } from 'ajv'
import { str } from './helpers'

// Gemini request bodies (generateContent, streamGenerateContent), from Google's API reference.

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

/** A batch's inline requests: each a generateContent body with the caller's metadata. */
const geminiBatchInput: SchemaObject = {
  type: 'object',
  required: ['requests'],
  properties: {
    requests: {
      type: 'object',
      required: ['requests'],
      properties: {
        requests: {
          type: 'array',
          minItems: 1,
          items: { type: 'object', required: ['request'], properties: { request: geminiGenerateSchema, metadata: { type: 'object' } } },
        },
      },
    },
  },
}

/**
 * `models/<model>:batchGenerateContent`: only batches whose requests are inline, so each one can be
 * checked and capped like a generateContent body (the input-config spelling is checked in code).
 */
export const geminiBatchSchema: SchemaObject = {
  type: 'object',
  required: ['batch'],
  properties: {
    batch: {
      type: 'object',
      properties: { model: str, display_name: str, displayName: str, input_config: geminiBatchInput, inputConfig: geminiBatchInput },
    },
  },
}
