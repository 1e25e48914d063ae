import { createMasker, type Masker } from '@gatehouse/core'

/**
 * The one masking function every sink of this package uses: core's masker (credential formats,
 * sensitive field names, the configured literal secrets), applied to values and keys alike.
 */
export type SinkMasker = Masker

export function createSinkMasker(knownSecrets: readonly string[]): SinkMasker {
  return createMasker({ knownSecrets })
}

export { escapeLineBreakers, safeStringify } from '@gatehouse/core'
