import { randomBytes } from 'node:crypto'

// Test vectors for the secret rule table (SECRET_RULES in @gatehouse/core): fake credentials built
// at run time from a prefix and random characters, so no key-shaped literal is ever committed and
// the repository's own scan stays clean. Used by the CI scanner's tests and the gateway's outbound
// secret detection tests.

export const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
export const LOWER = 'abcdefghijklmnopqrstuvwxyz'
export const DIGITS = '0123456789'
export const ALNUM = UPPER + LOWER + DIGITS
export const URLSAFE = `${ALNUM}_-`
export const HEX = '0123456789abcdef'
export const BASE32 = `${UPPER}234567`
export const BASE64 = `${ALNUM}+/`

/** Random characters from `charset` that look random: no runs, no placeholder words. */
export function rand(charset: string, n: number): string {
  for (let attempt = 0; attempt < 100; attempt++) {
    const bytes = randomBytes(n * 2)
    let out = ''
    for (let i = 0; i < n; i++) out += charset[bytes.readUInt16BE(i * 2) % charset.length]
    const lower = out.toLowerCase()
    const boring =
      /(.)\1{2}/.test(out) ||
      ['example', 'placeholder', 'dummy', 'redacted', 'changeme', 'xxx'].some((w) => lower.includes(w)) ||
      [...out].some(
        (c, i) =>
          i >= 2 &&
          Math.abs(out.charCodeAt(i) - out.charCodeAt(i - 1)) === 1 &&
          Math.abs(out.charCodeAt(i - 1) - out.charCodeAt(i - 2)) === 1,
      )
    if (!boring) return out
  }
  throw new Error('could not generate a random-looking string')
}

/** A generator of one valid-looking credential per rule id. */
export const FAKE_KEYS: Record<string, () => string> = {
  'anthropic-api-key': () => `sk-ant-api03-${rand(URLSAFE, 93)}AA`,
  'anthropic-admin-key': () => `sk-ant-admin01-${rand(URLSAFE, 93)}AA`,
  'anthropic-oauth-token': () => `sk-ant-oat01-${rand(URLSAFE, 95)}`,
  'openai-project-key': () => `sk-proj-${rand(URLSAFE, 74)}T3BlbkFJ${rand(URLSAFE, 74)}`,
  'openai-service-account-key': () => `sk-svcacct-${rand(URLSAFE, 74)}T3BlbkFJ${rand(URLSAFE, 74)}`,
  'openai-admin-key': () => `sk-admin-${rand(URLSAFE, 74)}T3BlbkFJ${rand(URLSAFE, 74)}`,
  'openai-legacy-key': () => `sk-${rand(ALNUM, 20)}T3BlbkFJ${rand(ALNUM, 20)}`,
  'openai-user-key': () => `sk-${rand(ALNUM, 48)}`,
  'openrouter-api-key': () => `sk-or-v1-${rand(HEX, 64)}`,
  'google-api-key': () => `AIza${rand(URLSAFE, 35)}`,
  'google-oauth-client-secret': () => `GOCSPX-${rand(URLSAFE, 28)}`,
  'google-oauth-access-token': () => `ya29.${rand(URLSAFE, 150)}`,
  'xai-api-key': () => `xai-${rand(ALNUM, 80)}`,
  'groq-api-key': () => `gsk_${rand(ALNUM, 52)}`,
  'huggingface-token': () => `hf_${rand(UPPER + LOWER, 34)}`,
  'perplexity-api-key': () => `pplx-${rand(ALNUM, 48)}`,
  'replicate-api-token': () => `r8_${rand(ALNUM, 37)}`,
  'github-token': () => `ghp_${rand(ALNUM, 36)}`,
  'github-fine-grained-token': () => `github_pat_${rand(ALNUM, 22)}_${rand(ALNUM, 59)}`,
  'gitlab-token': () => `glpat-${rand(URLSAFE, 20)}`,
  'aws-access-key-id': () => `AKIA${rand(BASE32, 16)}`,
  'aws-secret-access-key': () => `aws_secret_access_key = ${rand(BASE64, 40)}`,
  'slack-token': () => `xoxb-${rand(DIGITS, 12)}-${rand(DIGITS, 13)}-${rand(ALNUM, 24)}`,
  'slack-webhook-url': () =>
    `https://hooks.slack.com/services/T${rand(UPPER + DIGITS, 8)}/B${rand(UPPER + DIGITS, 10)}/${rand(ALNUM, 24)}`,
  'discord-webhook-url': () => `https://discord.com/api/webhooks/${rand(DIGITS, 18)}/${rand(URLSAFE, 68)}`,
  'stripe-secret-key': () => `sk_live_${rand(ALNUM, 99)}`,
  'stripe-webhook-secret': () => `whsec_${rand(ALNUM, 32)}`,
  'sendgrid-api-key': () => `SG.${rand(URLSAFE, 22)}.${rand(URLSAFE, 43)}`,
  'twilio-api-key': () => `SK${rand(HEX, 32)}`,
  'npm-token': () => `npm_${rand(ALNUM, 36)}`,
  'pypi-token': () => `pypi-AgEIcHlwaS5vcmc${rand(URLSAFE, 70)}`,
  'docker-hub-token': () => `dckr_pat_${rand(URLSAFE, 27)}`,
  'digitalocean-token': () => `dop_v1_${rand(HEX, 64)}`,
  'shopify-token': () => `shpat_${rand(HEX, 32)}`,
  'linear-api-key': () => `lin_api_${rand(ALNUM, 40)}`,
  'databricks-token': () => `dapi${rand(HEX, 32)}`,
  'age-secret-key': () => `AGE-SECRET-KEY-1${rand(UPPER + DIGITS, 58)}`,
  'private-key': () =>
    `-----BEGIN ${'PRIVATE'} KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC${rand(BASE64, 60)}\n${rand(BASE64, 64)}\n-----END ${'PRIVATE'} KEY-----`,
  'gatehouse-client-key': () => `gate_live_${rand(URLSAFE, 43)}`,
}

/** The part of a generated credential that must never be printed. */
export function secretPart(key: string): string {
  if (key.startsWith('aws_secret_access_key = ')) return key.slice('aws_secret_access_key = '.length)
  if (key.startsWith('-----BEGIN')) return key.split('\n')[1]!
  if (key.startsWith('https://')) return key.replace(/^.*\/(services|webhooks)\//, '')
  // After the last separator of the prefix: the random tail.
  return key.slice(Math.min(12, Math.floor(key.length / 3)))
}

/** Fails when `output` contains any 10-character window of the secret part of a key. */
export function expectMasked(output: string, keys: readonly string[]): void {
  for (const key of keys) {
    const secret = secretPart(key)
    for (let i = 0; i + 10 <= secret.length; i += 5) {
      const window = secret.slice(i, i + 10)
      if (output.includes(window))
        throw new Error(`output leaks part of a credential: …${window.slice(0, 3)}…`)
    }
  }
}

