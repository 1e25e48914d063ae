/**
 * One table of credential formats, shared by the CI scanner (`gatehouse-check secrets`) and, in
 * time, the masker and the gateway's outbound detection.
 *
 * The secret rules. Each rule is a published or well-known credential format with a distinctive
 * prefix, so a scan finds candidates with one pass of a prefix filter and checks each candidate
 * with the rule's own pattern, anchored at that position.
 *
 * Every pattern is written to run in linear time on hostile input: every quantifier is bounded,
 * and no quantified group contains another quantifier over overlapping characters. The tests feed
 * each rule a pathological input and bound the time.
 *
 * Pattern convention: group 1 is the random part of the credential and always ends the match (a
 * lookahead enforces the token boundary after it), so `match.length - body.length` is the length of
 * the non-secret prefix.
 */

import { hasValidClientKeyChecksum } from './keys'
import { END_URLSAFE, type SecretRule } from './secret-rule'
import { AI_PROVIDER_RULES } from './secret-rules-ai'
import { PLATFORM_RULES } from './secret-rules-platforms'

export type { SecretRule } from './secret-rule'

/** `gate_live_` and 43 base64url characters: a client key issued before keys had a checksum. */
const LEGACY_KEY_LENGTH = 53

const GATEHOUSE_RULES: readonly SecretRule[] = [
  {
    id: 'gatehouse-client-key',
    description: 'Gatehouse client key',
    prefixes: ['gate_(?:live|test)_'],
    // A current key (random part, `_`, CRC-32 checksum: verified, so a look-alike is never
    // reported), or a key issued before checksums (43 base64url: reported when it looks random).
    pattern: `gate_(?:live|test)_([A-Za-z0-9]{43}_[A-Za-z0-9]{6}|[A-Za-z0-9_-]{43})${END_URLSAFE}`,
    verify: (secret) => secret.length === LEGACY_KEY_LENGTH || hasValidClientKeyChecksum(secret),
    maskPattern: `gate_(?:live|test)_([A-Za-z0-9_-]{8,4096})`,
    reference: 'https://github.com/gatehouse-dev/gatehouse/tree/main/packages/client-auth',
  },
]

export const SECRET_RULES: readonly SecretRule[] = Object.freeze([...AI_PROVIDER_RULES, ...PLATFORM_RULES, ...GATEHOUSE_RULES])

/** The rule ids, in rule order. */
export const SECRET_RULE_IDS: readonly string[] = Object.freeze(SECRET_RULES.map((r) => r.id))
