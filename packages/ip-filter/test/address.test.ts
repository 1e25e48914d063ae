import ipaddr from 'ipaddr.js'
import { parseCidr, parseClientAddress } from '@gatehouse/ip-filter'
import { parseIpv4Fast, parseIpv6Fast } from '../src/address'
import { PrefixTrie } from '../src/trie'

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const toWords = (bytes: number[]): number[] => {
  const out: number[] = []
  for (let i = 0; i < bytes.length; i += 4) out.push(((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0)
  return out
}

describe('the fast address parser', () => {
  it('agrees with ipaddr.js on 5,000 random IPv4 and IPv6 addresses in several notations', () => {
    const rand = mulberry32(7)
    const int = (n: number): number => Math.floor(rand() * n)
    for (let i = 0; i < 5000; i++) {
      const bytes = Array.from({ length: 16 }, () => (rand() < 0.3 ? 0 : int(256)))
      const v6 = ipaddr.fromByteArray(bytes) as ipaddr.IPv6
      const forms = [v6.toString(), v6.toNormalizedString(), v6.parts.map((x) => x.toString(16).padStart(4, '0')).join(':')]
      for (const form of forms) expect(parseIpv6Fast(form)).toEqual(toWords(bytes))
      const v4bytes = bytes.slice(0, 4)
      const v4 = v4bytes.join('.')
      expect(parseIpv4Fast(v4)).toBe(toWords(v4bytes)[0])
      expect(parseIpv6Fast(`::ffff:${v4}`)).toEqual([0, 0, 0xffff, toWords(v4bytes)[0]])
    }
  })

  it.each([
    '',
    '1',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1..2.3',
    '1.2.3.4 ',
    ':',
    ':::',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    '12345::1',
    'g::1',
    '1:2:3:4:5:6:7:8::',
    '::1:',
    '::ffff:1.2.3',
    '1:2:3:4:5:6:7:1.2.3.4',
  ])('the fast path refuses %j', (text) => {
    const fast = text.includes(':') ? parseIpv6Fast(text) : parseIpv4Fast(text)
    expect(fast === undefined || fast === -1).toBe(true)
  })

  it('falls back to ipaddr.js for legacy IPv4 notations, which name the same address', () => {
    expect(parseClientAddress('10.1')).toMatchObject({ v4: 0x0a000001 })
    expect(parseClientAddress('0x0a.0.0.1')).toMatchObject({ v4: 0x0a000001 })
    expect(parseClientAddress('012.0.0.1')).toMatchObject({ v4: 0x0a000001 })
    expect(parseClientAddress('not-an-ip')).toBeUndefined()
    expect(parseClientAddress('')).toBeUndefined()
    expect(parseClientAddress(undefined)).toBeUndefined()
  })
})

describe('client address notations', () => {
  const ten = 0x0a000001
  it.each<[string, number, string | undefined, boolean]>([
    ['10.0.0.1', ten, 'ipv4', false],
    ['::ffff:10.0.0.1', ten, 'mapped', false],
    ['::ffff:a00:1', ten, 'mapped', false],
    ['::FFFF:0A00:0001', ten, 'mapped', false],
    ['[::ffff:10.0.0.1]', ten, 'mapped', false],
    ['::10.0.0.1', ten, 'compatible', true],
    ['::a00:1', ten, 'compatible', true],
    ['64:ff9b::10.0.0.1', ten, 'nat64', true],
    ['64:ff9b::a00:1', ten, 'nat64', true],
    ['2002:a00:1::1', ten, '6to4', true],
    ['2002:0a00:0001:abcd::42', ten, '6to4', true],
    ['fe80::1%eth0', -1, undefined, true],
    ['::1', -1, undefined, true],
    ['::', -1, undefined, true],
    ['2001:db8::1', -1, undefined, true],
  ])('%s is IPv4 %d (%s), has an IPv6 form: %s', (text, v4, source, hasV6) => {
    const a = parseClientAddress(text)
    expect(a).toBeDefined()
    expect(a!.v4).toBe(v4)
    expect(a!.v4Source).toBe(source)
    expect(a!.v6 !== undefined).toBe(hasV6)
  })
})

describe('parseCidr', () => {
  it.each<[string, string, number]>([
    ['10.0.0.0/8', '10.0.0.0/8', 8],
    ['192.168.1.100', '192.168.1.100', 32],
    ['192.168.1.100/32', '192.168.1.100', 32],
    ['0.0.0.0/0', '0.0.0.0/0', 0],
    ['2001:DB8::/32', '2001:db8::/32', 32],
    ['::/0', '::/0', 0],
    ['::1', '::1', 128],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8', 8],
    ['::ffff:0:0/96', '0.0.0.0/0', 0],
    ['::ffff:192.0.2.1', '192.0.2.1', 32],
    ['10.0.0.5/8', '10.0.0.0/8', 8],
  ])('%s is %s', (text, canonical, prefix) => {
    const c = parseCidr(text)
    expect(c).toMatchObject({ text: canonical, prefix })
  })

  it('flags host bits that were cleared', () => {
    expect(parseCidr('10.0.0.5/8')).toMatchObject({ hostBitsSet: true })
    expect(parseCidr('10.0.0.0/8')).toMatchObject({ hostBitsSet: false })
  })

  it.each(['10.0.0.0/33', '2001:db8::/129', '10.1/8', '10.0.0.0/', '10.0.0.0/8/8', 'fe80::1%eth0', '10.0.0.0/+8', '1e1.0.0.0', 'localhost', ''])(
    'refuses %j',
    (text) => {
      expect(parseCidr(text)).toEqual({ error: expect.any(String) })
    },
  )
  it('refuses a non-string', () => {
    expect(parseCidr(42)).toEqual({ error: 'is not a string' })
  })
})

describe('PrefixTrie', () => {
  it('finds the same networks as a linear scan over 2,000 random prefixes (IPv4 and IPv6)', () => {
    const rand = mulberry32(11)
    const int = (n: number): number => Math.floor(rand() * n)
    for (const width of [32, 128] as const) {
      const trie = new PrefixTrie<number>(width)
      const nets: { words: number[]; prefix: number }[] = []
      for (let i = 0; i < 2000; i++) {
        // Few distinct top bits so that prefixes nest and share paths.
        const words = [((int(4) << 28) | int(1 << 28)) >>> 0, int(2 ** 32), int(2 ** 32), int(2 ** 32)].map((w) => w >>> 0)
        const prefix = int(width + 1)
        const c = parseCidr(
          width === 32
            ? `${words[0]! >>> 24}.${(words[0]! >>> 16) & 255}.${(words[0]! >>> 8) & 255}.${words[0]! & 255}/${prefix}`
            : `${ipaddr.fromByteArray(words.flatMap((w) => [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255])).toString()}/${prefix}`,
        )
        if ('error' in c) throw new Error(c.error)
        nets.push({ words: [...c.words], prefix: c.prefix })
        trie.insert(c.words, c.prefix, i)
      }
      const contains = (n: { words: number[]; prefix: number }, a: number[]): boolean => {
        for (let i = 0, bits = n.prefix; bits > 0; i++, bits -= 32) {
          const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0
          if (((a[i]! & mask) >>> 0) !== n.words[i]) return false
        }
        return true
      }
      let hits = 0
      for (let k = 0; k < 1500; k++) {
        const a = [((int(4) << 28) | int(1 << 28)) >>> 0, int(2 ** 32), int(2 ** 32), int(2 ** 32)].map((w) => w >>> 0)
        if (width === 32) a.fill(0, 1)
        const matching = nets.map((n, i) => [n, i] as const).filter(([n]) => contains(n, a))
        const found = trie.lookup(a[0]!, a[1], a[2], a[3])
        if (matching.length === 0) {
          expect(found).toBeUndefined()
          continue
        }
        hits++
        // The trie returns the shortest matching prefix (first inserted among equal ones).
        const shortest = Math.min(...matching.map(([n]) => n.prefix))
        const expected = matching.find(([n]) => n.prefix === shortest)![1]
        expect(found).toBe(expected)
      }
      expect(hits).toBeGreaterThan(50)
    }
  })

  it('passes over a value the caller does not accept and continues to longer prefixes', () => {
    const trie = new PrefixTrie<string>(32)
    const ten = parseCidr('10.0.0.0/8')
    const host = parseCidr('10.1.2.3')
    if ('error' in ten || 'error' in host) throw new Error('bad fixture')
    trie.insert(ten.words, ten.prefix, 'wide')
    trie.insert(host.words, host.prefix, 'host')
    expect(trie.lookup(host.words[0])).toBe('wide')
    expect(trie.lookup(host.words[0], 0, 0, 0, (v) => v !== 'wide')).toBe('host')
    expect(trie.size).toBe(2)
  })
})
