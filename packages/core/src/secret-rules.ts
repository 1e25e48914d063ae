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

export interface SecretRule {
  /** Stable id, used in reports, SARIF, baselines. */
  readonly id: string
  /** What was found, for people. */
  readonly description: string
  /** Regex sources that a candidate starts with; together they form the prefix filter. */
  readonly prefixes: readonly string[]
  /** Regex source of the whole credential; group 1 is the random part, at the end. */
  readonly pattern: string
  /** Extra regex flags (`i` for the keyword-anchored rules). */
  readonly flags?: string
  /**
   * The character before the match must not be a letter or digit, nor a `+` or `/` unless the
   * prefix holds a `_`, `-` or `.` (which base64 never does). @default true
   */
  readonly boundary?: boolean
  /** Report only group 1 (keyword-anchored rules, where the prefix is a variable name). @default false */
  readonly reportBody?: boolean
  /** Reject bodies with runs of one character or of consecutive characters. @default true */
  readonly runCheck?: boolean
  /** Where the format is published, for the README and SARIF help. */
  readonly reference: string
}

// Token-boundary lookaheads for the common alphabets.
const END_URLSAFE = '(?![A-Za-z0-9_-])'
const END_ALNUM = '(?![A-Za-z0-9])'
const END_HEX = '(?![A-Fa-f0-9])'

export const SECRET_RULES: readonly SecretRule[] = Object.freeze([
  {
    id: 'anthropic-api-key',
    description: 'Anthropic API key',
    prefixes: ['sk-ant-'],
    pattern: `sk-ant-api\\d{2}-([A-Za-z0-9_-]{80,120})${END_URLSAFE}`,
    reference: 'https://docs.anthropic.com/en/api/getting-started',
  },
  {
    id: 'anthropic-admin-key',
    description: 'Anthropic Admin API key',
    prefixes: ['sk-ant-'],
    pattern: `sk-ant-admin\\d{2}-([A-Za-z0-9_-]{80,120})${END_URLSAFE}`,
    reference: 'https://docs.anthropic.com/en/api/administration-api',
  },
  {
    id: 'anthropic-oauth-token',
    description: 'Anthropic OAuth or session token',
    prefixes: ['sk-ant-'],
    pattern: `sk-ant-(?:oat|ort|sid)\\d{2}-([A-Za-z0-9_-]{40,200})${END_URLSAFE}`,
    reference: 'https://docs.anthropic.com/en/docs/claude-code/iam',
  },
  {
    id: 'openai-project-key',
    description: 'OpenAI project or user API key',
    prefixes: ['sk-'],
    pattern: `sk-(?:proj|None)-([A-Za-z0-9_-]{40,250})${END_URLSAFE}`,
    reference: 'https://platform.openai.com/docs/api-reference/authentication',
  },
  {
    id: 'openai-service-account-key',
    description: 'OpenAI service account key',
    prefixes: ['sk-'],
    pattern: `sk-svcacct-([A-Za-z0-9_-]{40,250})${END_URLSAFE}`,
    reference: 'https://platform.openai.com/docs/api-reference/project-service-accounts',
  },
  {
    id: 'openai-admin-key',
    description: 'OpenAI admin key',
    prefixes: ['sk-'],
    pattern: `sk-admin-([A-Za-z0-9_-]{40,250})${END_URLSAFE}`,
    reference: 'https://platform.openai.com/docs/api-reference/administration',
  },
  {
    id: 'openai-legacy-key',
    description: 'OpenAI legacy API key',
    prefixes: ['sk-'],
    pattern: `sk-([A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})${END_URLSAFE}`,
    reference: 'https://platform.openai.com/docs/api-reference/authentication',
  },
  {
    // After the legacy rule: a legacy key is also 48 letters and digits, and the first rule wins.
    id: 'openai-user-key',
    description: 'OpenAI API key (original format: sk- and 48 letters and digits)',
    prefixes: ['sk-'],
    pattern: `sk-([A-Za-z0-9]{48})${END_URLSAFE}`,
    reference: 'https://platform.openai.com/docs/api-reference/authentication',
  },
  {
    id: 'openrouter-api-key',
    description: 'OpenRouter API key',
    prefixes: ['sk-'],
    pattern: `sk-or-v1-([a-f0-9]{64})${END_URLSAFE}`,
    reference: 'https://openrouter.ai/docs/api-reference/authentication',
  },
  {
    id: 'google-api-key',
    description: 'Google API key (Gemini, Maps, Firebase)',
    prefixes: ['AIza'],
    pattern: `AIza([A-Za-z0-9_-]{35})${END_URLSAFE}`,
    reference: 'https://cloud.google.com/docs/authentication/api-keys',
  },
  {
    id: 'google-oauth-client-secret',
    description: 'Google OAuth client secret',
    prefixes: ['GOCSPX-'],
    pattern: `GOCSPX-([A-Za-z0-9_-]{28})${END_URLSAFE}`,
    reference: 'https://developers.google.com/identity/protocols/oauth2',
  },
  {
    id: 'google-oauth-access-token',
    description: 'Google OAuth access token',
    prefixes: ['ya29\\.'],
    pattern: `ya29\\.([A-Za-z0-9_-]{30,2048})${END_URLSAFE}`,
    reference: 'https://developers.google.com/identity/protocols/oauth2',
  },
  {
    id: 'xai-api-key',
    description: 'xAI API key',
    prefixes: ['xai-'],
    pattern: `xai-([A-Za-z0-9]{70,90})${END_URLSAFE}`,
    reference: 'https://docs.x.ai/docs/overview',
  },
  {
    id: 'groq-api-key',
    description: 'Groq API key',
    prefixes: ['gsk_'],
    pattern: `gsk_([A-Za-z0-9]{52})${END_URLSAFE}`,
    reference: 'https://console.groq.com/docs/quickstart',
  },
  {
    id: 'huggingface-token',
    description: 'Hugging Face access token',
    prefixes: ['hf_', 'api_org_'],
    pattern: `(?:hf_|api_org_)([A-Za-z0-9]{34})${END_URLSAFE}`,
    reference: 'https://huggingface.co/docs/hub/security-tokens',
  },
  {
    id: 'perplexity-api-key',
    description: 'Perplexity API key',
    prefixes: ['pplx-'],
    pattern: `pplx-([A-Za-z0-9]{48})${END_URLSAFE}`,
    reference: 'https://docs.perplexity.ai/guides/getting-started',
  },
  {
    id: 'replicate-api-token',
    description: 'Replicate API token',
    prefixes: ['r8_'],
    pattern: `r8_([A-Za-z0-9]{37})${END_URLSAFE}`,
    reference: 'https://replicate.com/docs/topics/security/api-tokens',
  },
  {
    id: 'github-token',
    description: 'GitHub classic token (personal, OAuth, user-to-server, server-to-server, refresh)',
    prefixes: ['gh[pousr]_'],
    pattern: `gh[pousr]_([A-Za-z0-9]{36,251})${END_URLSAFE}`,
    reference: 'https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/',
  },
  {
    id: 'github-fine-grained-token',
    description: 'GitHub fine-grained personal access token',
    prefixes: ['github_pat_'],
    pattern: `github_pat_([A-Za-z0-9_]{70,255})${END_URLSAFE}`,
    reference:
      'https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens',
  },
  {
    id: 'gitlab-token',
    description: 'GitLab token (personal, deploy, runner, pipeline trigger, OAuth)',
    prefixes: ['gl(?:pat|dt|rt|ptt|cbt|soat|oas|imt|ft|ffct)-', 'GR1348941'],
    pattern: `(?:gl(?:pat|dt|rt|ptt|cbt|soat|oas|imt|ft|ffct)-|GR1348941)([A-Za-z0-9_-]{20,300}(?:\\.[A-Za-z0-9_-]{1,64}){0,3})${END_URLSAFE}`,
    reference: 'https://docs.gitlab.com/ee/security/tokens/',
  },
  {
    id: 'aws-access-key-id',
    description: 'AWS access key id',
    prefixes: ['A(?:KIA|SIA|BIA|CCA)'],
    pattern: `A(?:KIA|SIA|BIA|CCA)([A-Z2-7]{16})${END_ALNUM}`,
    reference: 'https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html',
  },
  {
    id: 'aws-secret-access-key',
    description: 'AWS secret access key (assigned to a secret-access-key variable)',
    prefixes: ['[Ss](?:ecret|ECRET)[_-]?[Aa](?:ccess|CCESS)[_-]?[Kk](?:ey|EY)'],
    pattern: `secret[_-]?access[_-]?key["']?[ \\t]{0,4}(?::=|=>|[:=])[ \\t]{0,4}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])`,
    flags: 'i',
    boundary: false,
    reportBody: true,
    reference: 'https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html',
  },
  {
    id: 'slack-token',
    description: 'Slack bot, user, app or configuration token',
    prefixes: ['xox[abposre]', 'xapp-'],
    pattern: `(?:xox[abposr]-|xoxe\\.xox[bp]-|xoxe-|xapp-)([0-9]{1,20}-[A-Za-z0-9-]{8,250})${END_URLSAFE}`,
    reference: 'https://api.slack.com/authentication/token-types',
  },
  {
    id: 'slack-webhook-url',
    description: 'Slack incoming webhook URL',
    prefixes: ['https://hooks\\.slack\\.com/'],
    pattern: `https://hooks\\.slack\\.com/(?:services|workflows|triggers)/([A-Z0-9]{8,12}/[A-Z0-9]{8,12}/(?:[0-9]{1,20}/)?[A-Za-z0-9]{20,40})${END_ALNUM}`,
    reference: 'https://api.slack.com/messaging/webhooks',
  },
  {
    id: 'discord-webhook-url',
    description: 'Discord webhook URL',
    prefixes: ['https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/'],
    pattern: `https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/([0-9]{17,20}/[A-Za-z0-9_-]{60,68})${END_URLSAFE}`,
    reference: 'https://discord.com/developers/docs/resources/webhook',
  },
  {
    id: 'stripe-secret-key',
    description: 'Stripe secret or restricted key',
    prefixes: ['[rs]k_'],
    pattern: `[rs]k_(?:live|test)_([A-Za-z0-9]{20,247})${END_ALNUM}`,
    reference: 'https://docs.stripe.com/keys',
  },
  {
    id: 'stripe-webhook-secret',
    description: 'Stripe webhook signing secret',
    prefixes: ['whsec_'],
    pattern: `whsec_([A-Za-z0-9+/]{32,64})${END_ALNUM}`,
    reference: 'https://docs.stripe.com/webhooks',
  },
  {
    id: 'sendgrid-api-key',
    description: 'SendGrid API key',
    prefixes: ['SG\\.'],
    pattern: `SG\\.([A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43})${END_URLSAFE}`,
    reference: 'https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys',
  },
  {
    id: 'twilio-api-key',
    description: 'Twilio API key SID',
    prefixes: ['SK[0-9a-f]'],
    pattern: `SK([0-9a-f]{32})${END_ALNUM}`,
    reference: 'https://www.twilio.com/docs/iam/api-keys',
  },
  {
    id: 'npm-token',
    description: 'npm access token',
    prefixes: ['npm_'],
    pattern: `npm_([A-Za-z0-9]{36})${END_ALNUM}`,
    reference: 'https://docs.npmjs.com/about-access-tokens',
  },
  {
    id: 'pypi-token',
    description: 'PyPI API token',
    prefixes: ['pypi-'],
    pattern: `pypi-(AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,400})${END_URLSAFE}`,
    reference: 'https://pypi.org/help/#apitoken',
  },
  {
    id: 'docker-hub-token',
    description: 'Docker Hub personal access token',
    prefixes: ['dckr_pat_'],
    pattern: `dckr_pat_([A-Za-z0-9_-]{27})${END_URLSAFE}`,
    reference: 'https://docs.docker.com/security/for-developers/access-tokens/',
  },
  {
    id: 'digitalocean-token',
    description: 'DigitalOcean token',
    prefixes: ['do[opr]_v1_'],
    pattern: `do[opr]_v1_([a-f0-9]{64})${END_HEX}`,
    reference: 'https://docs.digitalocean.com/reference/api/create-personal-access-token/',
  },
  {
    id: 'shopify-token',
    description: 'Shopify access token',
    prefixes: ['shp(?:at|ca|pa|ss)_'],
    pattern: `shp(?:at|ca|pa|ss)_([a-fA-F0-9]{32})${END_ALNUM}`,
    reference: 'https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens',
  },
  {
    id: 'linear-api-key',
    description: 'Linear API key',
    prefixes: ['lin_api_'],
    pattern: `lin_api_([A-Za-z0-9]{40})${END_ALNUM}`,
    reference: 'https://developers.linear.app/docs/graphql/working-with-the-graphql-api',
  },
  {
    id: 'databricks-token',
    description: 'Databricks personal access token',
    prefixes: ['dapi'],
    pattern: `dapi([a-f0-9]{32}(?:-\\d)?)${END_ALNUM}`,
    reference: 'https://docs.databricks.com/en/dev-tools/auth/pat.html',
  },
  {
    id: 'age-secret-key',
    description: 'age encryption secret key',
    prefixes: ['AGE-SECRET-KEY-1'],
    pattern: `AGE-SECRET-KEY-1([0-9A-Z]{58})${END_ALNUM}`,
    reference: 'https://age-encryption.org/v1',
  },
  {
    id: 'private-key',
    description: 'PEM private key (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP)',
    prefixes: ['-----BEGIN '],
    // Header, then line breaks (real or JSON-escaped), optional "Proc-Type:"-style header lines,
    // then the first 40 base64 characters of the body. A header alone (in docs) is not a finding.
    pattern:
      '-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY(?: BLOCK)?-----(?:\\\\r|\\\\n|\\s){1,8}' +
      '(?:[A-Za-z-]{1,30}: ?[^\\r\\n\\\\]{0,200}(?:\\\\r|\\\\n|\\s){1,4}){0,4}([A-Za-z0-9+/]{40})',
    runCheck: false,
    reference: 'https://www.rfc-editor.org/rfc/rfc7468',
  },
  {
    id: 'gatehouse-client-key',
    description: 'Gatehouse client key',
    prefixes: ['gate_(?:live|test)_'],
    pattern: `gate_(?:live|test)_([A-Za-z0-9_-]{43})${END_URLSAFE}`,
    reference: 'https://github.com/gatehouse-dev/gatehouse/tree/main/packages/client-auth',
  },
] satisfies SecretRule[])

/** The rule ids, in rule order. */
export const SECRET_RULE_IDS: readonly string[] = Object.freeze(SECRET_RULES.map((r) => r.id))
