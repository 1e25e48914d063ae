// The rule table lives in core (one table for the scanner, the masker and the gateway).
export { SECRET_RULES, SECRET_RULE_IDS, type SecretRule } from '@gatehouse/core'
