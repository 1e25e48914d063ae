import { randomBytes } from 'node:crypto'
import { createMasker, maskSecret, maskSecrets, maskValue } from '@gatehouse/core'

const rand = (n: number): string => randomBytes(n).toString('base64url').slice(0, n)

describe('maskSecrets', () => {
  it.each<[string, string, string]>([
    ['anthropic api key', `sk-ant-api03-${rand(80)}`, 'sk-ant-****'],
    ['anthropic oauth token', `sk-ant-oat01-${rand(80)}`, 'sk-ant-****'],
    ['openai project key', `sk-proj-${rand(60)}`, 'sk-proj-****'],
    ['openai legacy key', `sk-${rand(48)}`, 'sk-****'],
    ['gatehouse client key', `gate_live_${rand(43)}`, 'gate_live_****'],
    ['google api key', `AIza${rand(35)}`, 'AIza****'],
    ['github token', `ghp_${'a1B2'.repeat(9)}`, 'ghp_****'],
    ['aws access key', 'AKIA' + 'ABCDEFGHIJKLMNOP', 'AKIA****'],
    ['bearer header', `Bearer ${rand(30)}`, 'Bearer ****'],
  ])('masks a %s', (_name, secret, expected) => {
    const out = maskSecrets(`before ${secret} after`)
    expect(out).toBe(`before ${expected} after`)
  })

  it('masks credentials in query strings', () => {
    const key = rand(39)
    expect(maskSecrets(`/v1beta/models/x:generateContent?alt=sse&key=${key}&x=1`)).toBe(
      '/v1beta/models/x:generateContent?alt=sse&key=****&x=1',
    )
  })

  it('masks a PEM private key whole', () => {
    const pem = `-----BEGIN PRIVATE KEY-----\n${rand(64)}\n${rand(64)}\n-----END PRIVATE KEY-----`
    const out = maskSecrets(`x ${pem} y`)
    expect(out).toBe('x -----BEGIN PRIVATE KEY-----**** y')
  })

  it('leaves ordinary text, key ids and masked values alone', () => {
    const text = 'Token expired for key_3f9a12bc; sk-ant-**** Bearer **** model claude-sonnet-4'
    expect(maskSecrets(text)).toBe(text)
  })

  it('stays linear on pathological input', () => {
    const evil = 'sk-' + '-'.repeat(50_000) + '!' + 'Bearer '.repeat(10_000) + '?key=' + 'a'.repeat(10_000)
    const start = process.hrtime.bigint()
    maskSecrets(evil)
    // A generous bound that only catastrophic backtracking could exceed.
    expect(Number(process.hrtime.bigint() - start) / 1e6).toBeLessThan(2000)
  })
})

describe('maskSecret', () => {
  it('keeps a separator prefix of an unknown token and nothing of a short one', () => {
    expect(maskSecret(`token-${rand(30)}`)).toBe('token-****')
    expect(maskSecret('hunter2')).toBe('****')
    expect(maskSecret(rand(40).replace(/[-_]/g, 'x'))).toBe('****')
  })
})

describe('maskValue', () => {
  it('masks sensitive fields whatever their format and scans every string', () => {
    const key = `sk-ant-api03-${rand(60)}`
    const out = maskValue({
      headers: { authorization: 'Bearer abcdefgh12345678', 'x-api-key': 'plain', cookie: 'sid=1' },
      nested: [{ message: `bad key ${key}` }],
      refresh_token: 'r1',
      count: 3,
    })
    expect(out).toEqual({
      headers: { authorization: 'Bearer ****', 'x-api-key': '****', cookie: '****' },
      nested: [{ message: 'bad key sk-ant-****' }],
      refresh_token: '****',
      count: 3,
    })
    expect(JSON.stringify(out)).not.toContain(key)
  })

  it('does not mutate its input', () => {
    const input = { api_key: 'secret-value-1234' }
    maskValue(input)
    expect(input.api_key).toBe('secret-value-1234')
  })
})

describe('createMasker', () => {
  it('masks configured literal secrets of any shape', () => {
    const literal = randomBytes(32).toString('hex')
    const masker = createMasker({ knownSecrets: [literal] })
    expect(masker.text(`key is ${literal}.`)).toBe('key is ****.')
    expect(JSON.stringify(masker.value({ a: [literal] }))).not.toContain(literal)
  })
})

describe('every masking rule', () => {
  const r = (n: number): string => randomBytes(n).toString('hex').slice(0, n)
  it.each<[string, string, string]>([
    ['stripe', `sk_live_${r(24)}`, 'sk_live_****'],
    ['google-oauth', `ya29.${r(40)}`, 'ya29.****'],
    ['gitlab', `glpat-${r(20)}`, 'glpat-****'],
    ['slack', `xoxb-${r(30)}`, 'xoxb-****'],
    ['slack-webhook', `https://hooks.slack.com/services/T${r(8)}/B${r(8)}/${r(24)}`, 'https://hooks.slack.com/services/****'],
    ['xai', `xai-${r(40)}`, 'xai-****'],
    ['groq', `gsk_${r(40)}`, 'gsk_****'],
    ['huggingface', `hf_${r(34)}`, 'hf_****'],
    ['npm', `npm_${r(36)}`, 'npm_****'],
    ['sendgrid', `SG.${r(22)}.${r(43)}`, 'SG.****'],
    ['jwt', `eyJ${r(20)}.eyJ${r(30)}.${r(40)}`, 'eyJ****'],
    ['url-userinfo', `postgres://gatehouse:${r(20)}@db:5432/x`, 'postgres://gatehouse:****@db:5432/x'],
    ['basic auth', `Basic ${Buffer.from(`u:${r(12)}`).toString('base64')}`, 'Basic ****'],
  ])('masks %s (the quick pre-check lets it through)', (_name, secret, expected) => {
    expect(maskSecrets(`x ${secret} y`)).toBe(`x ${expected} y`)
  })
})

describe('maskValue on keys and dates', () => {
  it('masks a secret used as an object key and turns a Date into ISO text', () => {
    const key = `gate_live_${rand(43)}`
    const when = new Date('2026-01-02T03:04:05.000Z')
    const out = maskValue({ [key]: 'seen', at: when, nested: { [`sk-ant-api03-${rand(40)}`]: 1 } })
    expect(JSON.stringify(out)).not.toContain(key)
    expect(Object.keys(out)).toEqual(['gate_live_****', 'at', 'nested'])
    expect((out as unknown as { at: string }).at).toBe('2026-01-02T03:04:05.000Z')
    expect(Object.keys((out as unknown as { nested: object }).nested)).toEqual(['sk-ant-****'])
  })

  it('masks the shortest texts any rule can match, and short texts next to known secrets', () => {
    // Texts under six characters skip the rules, and texts shorter than every known secret skip
    // the literal search: these are the boundaries.
    expect(maskSecrets('&key=x')).toBe('&key=****')
    expect(maskSecrets(';sig=1')).toBe(';sig=****')
    expect(maskSecrets('ab://u:p@h')).toBe('ab://u:****@h')
    const secret = 'S3cr3t-literal-value'
    const m = createMasker({ knownSecrets: [secret, `${secret}-and-a-longer-one`] })
    expect(m.text(secret)).not.toContain(secret)
    expect(m.text(`x${secret}y`)).not.toContain(secret)
    expect(m.text('short')).toBe('short')
  })

  it('json() writes exactly what JSON.stringify writes for value(), for any value', () => {
    const secret = `sk-ant-api03-${randomBytes(24).toString('base64url')}`
    const literal = randomBytes(20).toString('hex')
    const m = createMasker({ knownSecrets: [literal] })
    const bigintAsText = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v)
    const expected = (v: unknown): string | undefined => JSON.stringify(m.value(v), bigintAsText)
    let seed = 7
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    const leaf = (): unknown =>
      [
        () => 'plain',
        () => `Bearer ${secret}`,
        () => `x${literal}y`,
        () => '\u2028line\nbreak',
        () => rnd(1000) - 500,
        () => -0,
        () => NaN,
        () => Infinity,
        () => true,
        () => null,
        () => undefined,
        () => () => 1,
        () => Symbol('s'),
        () => 10n,
        () => new Date(0),
        () => new Date(NaN),
        () => new Error(`failed with ${secret}`),
        () => '',
      ][rnd(18)]!()
    const key = (): string => ['a', 'path', 'api_key', 'Authorization', 'x-api-key', 'token', '1', '20', secret, literal, 'Key'][rnd(11)]!
    const value = (depth: number): unknown => {
      if (depth > 4 || rnd(3) === 0) return leaf()
      if (rnd(2) === 0) return Array.from({ length: rnd(4) }, () => value(depth + 1))
      const o: Record<string, unknown> = {}
      for (let i = rnd(5); i > 0; i--) o[key()] = value(depth + 1)
      return o
    }
    for (let i = 0; i < 2000; i++) {
      const v = value(0)
      expect(m.json(v)).toBe(expected(v))
    }
    // Deeper than the depth limit, and a cycle.
    let deep: unknown = 'bottom'
    for (let i = 0; i < 30; i++) deep = { next: deep }
    expect(m.json(deep)).toBe(expected(deep))
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    expect(m.json(cyclic)).toBe(expected(cyclic))
    expect(m.json({ [secret]: 1, 'sk-ant-****': 2 })).toBe(expected({ [secret]: 1, 'sk-ant-****': 2 }))
  })
})
