/** Gatehouse client keys: `gate_live_` + 43 base64url characters (256 random bits). */
export const CLIENT_KEY_PREFIX = 'gate_live_'

/** The exact shape of a client key. */
export const CLIENT_KEY_PATTERN = /^gate_live_[A-Za-z0-9_-]{43}$/

/**
 * The client keys printed in Gatehouse's own documentation and `config.example.yaml`. They never
 * authenticate: presenting one is a `security_violation` (a honeytoken), and the secret scanner
 * treats them as documented examples, not leaks.
 */
export const DOCUMENTED_CLIENT_KEYS: readonly string[] = Object.freeze([
  'gate_live_EXAMPLE0do0not0use0this0key0it0never0works0',
  'gate_live_DOCS0sample0key0for0the0gatehouse0readme000',
])
