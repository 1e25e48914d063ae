import Ajv, { type SchemaObject, type ValidateFunction } from 'ajv'
import type { EndpointKind } from './endpoints'

/*
 * Request body schemas, from the providers' API references. They check the fields and types the
 * providers document and let unknown fields through: providers add fields often, and the upstream
 * still has the last word. Alternatives are written as type unions rather than anyOf, so the one
 * error ajv reports names the exact field.
 */
import {
  openaiChatSchema,
  openaiCompletionsSchema,
  openaiEmbeddingsSchema,
  openaiResponsesSchema,
} from './schemas/openai'
import { claudeBatchesSchema, claudeCountTokensSchema, claudeMessagesSchema } from './schemas/claude'
import { geminiBatchSchema, geminiGenerateSchema } from './schemas/gemini'

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
    'gemini.batch': geminiBatchSchema,
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
