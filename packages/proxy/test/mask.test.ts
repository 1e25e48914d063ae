import { randomBytes } from 'node:crypto'
import { createStreamMasker, prepareSecrets } from '../src/mask'

/** The stream masker: secrets masked across chunk boundaries, nothing lost, nothing held without need. */
describe('createStreamMasker', () => {
  const secret = `sk-proj-${randomBytes(30).toString('base64url')}`
  const body = `data: {"echo":"Bearer ${secret}"}\n\ndata: {"again":"${secret}","end":true}\n\n`

  it('masks a secret split at every possible point between two chunks, and passes every other byte', () => {
    for (let cut = 0; cut <= body.length; cut++) {
      const m = createStreamMasker(prepareSecrets([`Bearer ${secret}`, secret]))!
      const out = Buffer.concat([m.push(Buffer.from(body.slice(0, cut))), m.push(Buffer.from(body.slice(cut))), m.end()]).toString()
      expect(out.includes(secret)).toBe(false)
      expect(out.replace(/sk-proj-\*{4}/g, 'X')).toBe(body.split(secret).join('X'))
    }
  })

  it('masks a secret fed one byte at a time', () => {
    const m = createStreamMasker(prepareSecrets([secret]))!
    const parts: Buffer[] = []
    for (const byte of Buffer.from(body)) parts.push(m.push(Buffer.from([byte])))
    parts.push(m.end())
    expect(Buffer.concat(parts).toString()).toBe(body.split(secret).join('sk-proj-****'))
  })

  it('holds back nothing when a chunk cannot end inside a secret (an SSE event)', () => {
    const m = createStreamMasker(prepareSecrets([secret]))!
    const event = Buffer.from('data: {"delta":"hello"}\n\n')
    expect(m.push(event).equals(event)).toBe(true)
    // A chunk ending in the secret's first bytes waits for the next one.
    expect(m.push(Buffer.from('data: sk-pr')).toString()).toBe('data: ')
    expect(m.push(Buffer.from('ose\n\n')).toString()).toBe('sk-prose\n\n')
  })

  it('has nothing to do without secrets of masking length', () => {
    expect(createStreamMasker(prepareSecrets(['short']))).toBeUndefined()
  })
})
