import { randomBytes, randomUUID, createHash } from 'node:crypto'
import { DOCUMENTED_CLIENT_KEYS, maskSecret } from '@gatehouse/core'
import { SECRET_RULES, SECRET_RULE_IDS, scanText } from '../src'
import { looksLikeFiller } from '@gatehouse/core'
import { SecretScanner } from '../src/secrets/engine'
import { ALNUM, BASE64, FAKE_KEYS, HEX, URLSAFE, expectMasked, rand, secretPart } from './helpers'

describe('secret rules', () => {
  it('has a fake-key generator for every rule, and no generator without a rule', () => {
    expect(Object.keys(FAKE_KEYS).sort()).toEqual([...SECRET_RULE_IDS].sort())
  })

  it('has unique ids and compiles every pattern', () => {
    expect(new Set(SECRET_RULE_IDS).size).toBe(SECRET_RULES.length)
    for (const r of SECRET_RULES) expect(() => new RegExp(r.pattern, `y${r.flags ?? ''}`)).not.toThrow()
  })

  it.each(SECRET_RULE_IDS.map((id) => [id]))('finds a %s and masks it', (id) => {
    const key = FAKE_KEYS[id]!()
    const findings = scanText(`const value = "${key}"\n`, { file: 'x.ts' })
    expect(findings).toHaveLength(1)
    const f = findings[0]!
    expect(f.rule).toBe(id)
    expect(f.line).toBe(1)
    expect(f.file).toBe('x.ts')
    expect(f.match).toContain('****')
    expect(f.match.length).toBeLessThan(60)
    expectMasked(JSON.stringify(f), [key])
    // The reported column points at the credential (or, for keyword rules, at its value).
    const reported = key.startsWith('aws_secret') ? secretPart(key) : key
    expect(f.column).toBe(`const value = "${key}"`.indexOf(reported) + 1)
    if (id === 'private-key') expect(f.endColumn - f.column).toBe(key.indexOf('\n') + 1 + 40)
    else expect(f.endColumn - f.column).toBe(reported.length)
  })

  it.each(SECRET_RULE_IDS.map((id) => [id]))('runs %s in linear time on pathological input', (id) => {
    const rule = SECRET_RULES.find((r) => r.id === id)!
    const key = FAKE_KEYS[id]!()
    const start = key.startsWith('aws_secret') ? 'aws_secret_access_key = ' : key.slice(0, 12)
    const inputs = [
      // near misses glued together: every copy is a candidate whose pattern fails at the end
      `${key.slice(0, -1)}!`.repeat(Math.ceil(150_000 / key.length)),
      // a prefix followed by a very long run of body characters
      `${start}${'A1b2'.repeat(40_000)}`,
      // the prefix repeated with nothing else
      start.repeat(Math.ceil(150_000 / start.length)),
      // header lines and whitespace that the private-key pattern walks over
      `-----BEGIN A B C PRIVATE KEY-----${' \\n'.repeat(4)}${'Proc-Type: 4\n'.repeat(10_000)}`,
      // the same character class over and over, with separators the patterns allow
      `${start}${'a.'.repeat(75_000)}`,
      `${start}${'1-'.repeat(75_000)}`,
    ]
    const scanner = new SecretScanner([rule])
    for (const input of inputs) {
      const t0 = performance.now()
      scanner.scanText(input)
      expect(performance.now() - t0).toBeLessThan(1500)
    }
  })

  it('scans a long single line full of keys (minified code) in bounded time', () => {
    const keys = Array.from({ length: 200 }, () => FAKE_KEYS['github-token']!())
    const line = Array.from({ length: 20_000 }, (_, i) => keys[i % keys.length]).join(',')
    const t0 = performance.now()
    const findings = scanText(`${line}\n`)
    expect(performance.now() - t0).toBeLessThan(3000)
    expect(findings).toHaveLength(20_000)
    expect(findings[19_999]!.column).toBe(line.lastIndexOf(keys[19_999 % 200]!) + 1)
  })

  it('finds the original 48-character OpenAI key, and not one character shorter or longer', () => {
    const body = rand(ALNUM, 49)
    expect(scanText(`OPENAI_API_KEY=sk-${body.slice(0, 48)}\n`).map((f) => f.rule)).toEqual(['openai-user-key'])
    expect(scanText(`OPENAI_API_KEY=sk-${body.slice(0, 47)}\n`)).toEqual([])
    expect(scanText(`OPENAI_API_KEY=sk-${body}\n`)).toEqual([])
  })

  it.each<[string, string, (key: string) => string]>([
    ['github-token', 'userinfo of a clone URL', (k) => `git clone https://${k}@github.com/acme/app.git`],
    ['github-token', 'userinfo with a user name', (k) => `https://x-access-token:${k}@github.com/acme/app`],
    ['gitlab-token', 'userinfo of a GitLab URL', (k) => `https://${k}@gitlab.com/acme/app.git`],
    ['openai-user-key', 'a URL path', (k) => `curl https://proxy.internal/v1/${k}/chat`],
    ['anthropic-api-key', 'a URL path', (k) => `GET /keys/${k} HTTP/1.1`],
    ['slack-token', 'after a plus', (k) => `token+${k}`],
  ])('finds a %s in %s (right after a / or +)', (id, _where, embed) => {
    const key = FAKE_KEYS[id]!()
    const findings = scanText(`${embed(key)}\n`)
    expect(findings.map((f) => f.rule)).toEqual([id])
    expect(findings[0]!.column).toBe(embed(key).indexOf(key) + 1)
  })

  it('still takes a letters-only prefix after a / or + for a piece of base64', () => {
    const aws = FAKE_KEYS['aws-access-key-id']!()
    expect(scanText(`blob: ${rand(BASE64, 40)}/${aws}\n`)).toEqual([])
    expect(scanText(`blob: ${rand(BASE64, 40)}+${aws}\n`)).toEqual([])
  })

  it('reports the line and column of each finding in a multi-line text', () => {
    const a = FAKE_KEYS['github-token']!()
    const b = FAKE_KEYS['anthropic-api-key']!()
    const text = `first line\n  token: ${a}\n\nkey=${b} trailing\n`
    const findings = scanText(text)
    expect(findings.map((f) => [f.rule, f.line, f.column])).toEqual([
      ['github-token', 2, 10],
      ['anthropic-api-key', 4, 5],
    ])
  })

  it('finds two credentials on one line and keys next to punctuation', () => {
    const a = FAKE_KEYS['npm-token']!()
    const b = FAKE_KEYS['google-api-key']!()
    const findings = scanText(`(${a}),[${b}];'${a}'`)
    expect(findings.map((f) => f.rule)).toEqual(['npm-token', 'google-api-key', 'npm-token'])
  })

  it('keeps the documented prefix of the masked value (core maskSecret where it knows the format)', () => {
    const key = FAKE_KEYS['anthropic-api-key']!()
    expect(scanText(key)[0]!.match).toBe(maskSecret(key))
    expect(scanText(key)[0]!.match).toBe('sk-ant-****')
    const hook = FAKE_KEYS['slack-webhook-url']!()
    expect(scanText(hook)[0]!.match).toBe('https://hooks.slack.com/services/****')
    const pem = FAKE_KEYS['private-key']!()
    expect(scanText(pem)[0]!.match).toBe('-----BEGIN PRIVATE KEY-----****')
  })

  it('gives the same fingerprint for the same credential wherever it is, and another for another', () => {
    const key = FAKE_KEYS['groq-api-key']!()
    const [a] = scanText(`x ${key}`)
    const [b] = scanText(`\n\n   ${key}`)
    const [c] = scanText(FAKE_KEYS['groq-api-key']!())
    expect(a!.fingerprint).toBe(b!.fingerprint)
    expect(a!.fingerprint).not.toBe(c!.fingerprint)
    expect(a!.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    expect(a!.fingerprint).toBe(createHash('sha256').update(`groq-api-key\0${key}`).digest('hex'))
  })

  it('finds a private key inside a JSON string with escaped newlines (a service-account file)', () => {
    const body = rand(BASE64, 64)
    const json = JSON.stringify({
      type: 'service_account',
      private_key: `-----BEGIN ${'PRIVATE'} KEY-----\n${body}\n-----END ${'PRIVATE'} KEY-----\n`,
    })
    const findings = scanText(json)
    expect(findings.map((f) => f.rule)).toEqual(['private-key'])
    expectMasked(JSON.stringify(findings), [`-----BEGIN X\n${body}`])
  })

  it('finds keys right after an escaped line break in a JSON string', () => {
    const a = FAKE_KEYS['github-token']!()
    const b = FAKE_KEYS['slack-webhook-url']!()
    const pem = FAKE_KEYS['private-key']!()
    const json = JSON.stringify({
      tokens: `${a}\n${b}`,
      bundle: `-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n${pem}`,
    })
    expect(scanText(json).map((f) => f.rule)).toEqual(['github-token', 'slack-webhook-url', 'private-key'])
    // A letter n that is not an escape still makes a longer token.
    expect(scanText(`n${a}`)).toEqual([])
  })

  it('finds an encrypted PEM key with Proc-Type and DEK-Info headers', () => {
    const pem = `-----BEGIN RSA ${'PRIVATE'} KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,${rand(HEX, 32).toUpperCase()}\n\n${rand(BASE64, 64)}\n`
    expect(scanText(pem).map((f) => f.rule)).toEqual(['private-key'])
  })

  it('finds AWS secret keys in the usual spellings', () => {
    const v = rand(BASE64, 40)
    for (const line of [
      `aws_secret_access_key = ${v}`,
      `AWS_SECRET_ACCESS_KEY="${v}"`,
      `secretAccessKey: '${v}'`,
      `"SecretAccessKey": "${v}"`,
    ]) {
      const findings = scanText(line)
      expect(findings.map((f) => f.rule)).toEqual(['aws-secret-access-key'])
      expect(findings[0]!.match).toBe('****')
    }
  })
})

describe('look-alikes that stay silent', () => {
  const silent: Array<[string, () => string]> = [
    ['a masked Anthropic key', () => 'ANTHROPIC_API_KEY=sk-ant-****'],
    ['a masked key with a kept prefix', () => `"key": "sk-ant-api03-****${'*'.repeat(20)}"`],
    ['an environment reference', () => 'api_key: ${ANTHROPIC_API_KEY}'],
    ['a shell default reference', () => 'OPENAI_API_KEY=${OPENAI_API_KEY:-sk-proj-changeme}'],
    ['an x filler', () => `sk-proj-${'x'.repeat(60)}`],
    [
      'an X filler in a Slack webhook',
      () => `https://hooks.slack.com/services/T00000000/B00000000/${'X'.repeat(24)}`,
    ],
    [
      'an ascending filler',
      () => `sk-ant-api03-${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2)}ABCDEFGHIJKLMNOPQRSTUAA`,
    ],
    ['a repeated short pattern', () => `ghp_${'ab12'.repeat(9)}`],
    [
      'a placeholder word',
      () => `sk-ant-api03-${rand(URLSAFE, 40)}YOUR_KEY_PLACEHOLDER${rand(URLSAFE, 33)}AA`,
    ],
    ['the AWS documentation key id', () => 'AKIA' + 'IOSFODNN7' + 'EXAMPLE'],
    [
      'the AWS documentation secret',
      () => `aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY${'EXAMPLE'}KEY`,
    ],
    ['the Stripe documentation test key', () => 'sk_' + 'test_' + '4eC39HqLyjWDarjtT1zdp7dc'],
    ['Gatehouse documented client keys', () => DOCUMENTED_CLIENT_KEYS.join('\n')],
    ['a sha256 hex digest', () => `sha256:${createHash('sha256').update(randomBytes(8)).digest('hex')}`],
    ['a git commit id', () => `commit ${randomBytes(20).toString('hex')}`],
    ['UUIDs', () => `${randomUUID()} ${randomUUID().toUpperCase()} ${randomUUID().replace(/-/g, '')}`],
    [
      'package integrity strings',
      () =>
        Array.from({ length: 200 }, () => `"integrity": "sha512-${randomBytes(64).toString('base64')}"`).join(
          '\n',
        ) + `\n"integrity": "sha512-AIza${rand(URLSAFE, 35)}=="`,
    ],
    [
      'a key prefix inside a base64 blob',
      () => `data:image/png;base64,${rand(BASE64, 30)}AIza${rand(URLSAFE, 35)}${rand(BASE64, 30)}`,
    ],
    [
      'a key prefix inside an identifier',
      () => `myghp_${rand(ALNUM, 36)} xsk-ant-api03-${rand(URLSAFE, 93)}AA`,
    ],
    ['a too-short token', () => `ghp_${rand(ALNUM, 20)} npm_${rand(ALNUM, 20)}`],
    ['a token longer than its format', () => `AIza${rand(URLSAFE, 60)}`],
    [
      'a PEM header without a body (documentation)',
      () => `Put your key between -----BEGIN ${'PRIVATE'} KEY----- and -----END ${'PRIVATE'} KEY-----.`,
    ],
    [
      'a PEM with a placeholder body',
      () => `-----BEGIN ${'PRIVATE'} KEY-----\n...\n-----END ${'PRIVATE'} KEY-----`,
    ],
    ['a public key', () => `-----BEGIN PUBLIC KEY-----\n${rand(BASE64, 64)}\n-----END PUBLIC KEY-----`],
    ['a certificate', () => `-----BEGIN CERTIFICATE-----\n${rand(BASE64, 64)}\n-----END CERTIFICATE-----`],
    [
      'ordinary prose and code',
      () => 'The sk-learn docs; ghost_user; AIzaSy is a prefix; xoxo; hf_hub; npm_config_registry; SKU-1234',
    ],
    ['a Stripe publishable key', () => `pk_live_${rand(ALNUM, 99)}`],
  ]

  it.each(silent)('ignores %s', (_name, make) => {
    expect(scanText(make())).toEqual([])
  })

  it('judges filler by the random part alone', () => {
    expect(looksLikeFiller('x'.repeat(40))).toBe(true)
    expect(looksLikeFiller('0123456789')).toBe(true)
    expect(looksLikeFiller(rand(ALNUM, 40))).toBe(false)
    expect(looksLikeFiller(rand(HEX, 64))).toBe(false)
  })
})

describe('inline allow comments', () => {
  it('silences a finding with gatehouse-check:allow on its line', () => {
    const key = FAKE_KEYS['github-token']!()
    expect(scanText(`token = "${key}" # gatehouse-check:allow test fixture`)).toEqual([])
    expect(scanText(`// gatehouse-check:allow\ntoken = "${key}"`)).toHaveLength(1)
  })

  it('silences the next line with gatehouse-check:allow-next-line, and only that line', () => {
    const key = FAKE_KEYS['github-token']!()
    const text = `// gatehouse-check:allow-next-line\ntoken = "${key}"\nother = "${key}"\n`
    const findings = scanText(text)
    expect(findings.map((f) => f.line)).toEqual([3])
  })

  it('takes the short forms gatehouse:allow and gatehouse:allow-next-line, as gitleaks users write gitleaks:allow', () => {
    const key = FAKE_KEYS['github-token']!()
    expect(scanText(`token = "${key}" # gatehouse:allow test fixture`)).toEqual([])
    expect(scanText(`// gatehouse:allow-next-line\ntoken = "${key}"\nother = "${key}"\n`).map((f) => f.line)).toEqual([3])
    // Another tool's marker silences nothing here.
    expect(scanText(`token = "${key}" # gitleaks:allow`)).toHaveLength(1)
  })

  it('counts allowed findings separately from findings', () => {
    const key = FAKE_KEYS['npm-token']!()
    const hits = new SecretScanner().scanText(`${key} gatehouse-check:allow\n${key}\n`)
    expect(hits.map((h) => [h.line, h.allowed])).toEqual([
      [1, true],
      [2, false],
    ])
  })
})
