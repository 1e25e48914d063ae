import { maskSecret } from '@gatehouse/core'

/**
 * Masks the exact secret values injected into one request in a relayed byte stream, across chunk
 * boundaries, without delaying the stream: a chunk is passed on whole unless its end could be the
 * start of a secret, and only those few bytes wait for the next chunk. (An SSE event ends in a
 * blank line, which no secret starts with, so events are never held back.) Written here because
 * stream maskers on npm either buffer whole bodies or match patterns, not a per-request literal set.
 */
export interface StreamMasker {
  push(chunk: Buffer): Buffer
  /** What is still held back at the end of the stream. */
  end(): Buffer
}

interface Literal {
  readonly value: Buffer
  readonly masked: Buffer
}

const EMPTY = Buffer.alloc(0)

/** The literals of one credential, prepared once (a credential's header object lives as long as it does). */
export interface InjectedSecrets {
  readonly texts: readonly string[]
  readonly literals: readonly Literal[]
}

export function prepareSecrets(secrets: readonly string[]): InjectedSecrets {
  const unique = [...new Set(secrets.filter((s) => s.length >= 8))]
  // A value that contains another (`Bearer sk-…` and `sk-…`) is found through the shorter one.
  const texts = unique.filter((s) => !unique.some((o) => o !== s && s.includes(o))).sort((a, b) => b.length - a.length)
  return {
    texts,
    literals: texts.map((s) => ({ value: Buffer.from(s), masked: Buffer.from(maskSecret(s)) })),
  }
}

/** Mask the injected values in a text (headers, error bodies). */
export function maskInjected(text: string, secrets: InjectedSecrets): string {
  let out = text
  for (const secret of secrets.texts)
    if (out.includes(secret)) out = out.split(secret).join(maskSecret(secret))
  return out
}

export function createStreamMasker(secrets: InjectedSecrets): StreamMasker | undefined {
  const literals = secrets.literals
  if (literals.length === 0) return undefined
  const longest = literals[0]!.value.length
  let carry = EMPTY

  const replaceAll = (data: Buffer): Buffer => {
    let out = data
    for (const { value, masked } of literals) {
      let at = out.indexOf(value)
      if (at === -1) continue
      const parts: Buffer[] = []
      let from = 0
      while (at !== -1) {
        parts.push(out.subarray(from, at), masked)
        from = at + value.length
        at = out.indexOf(value, from)
      }
      parts.push(out.subarray(from))
      out = Buffer.concat(parts)
    }
    return out
  }

  const firstBytes = new Set(literals.map((l) => l.value[0]!))

  /**
   * The length of the longest end of `data` that is a proper beginning of some secret. Only
   * positions holding a secret's first byte are compared, without allocating: a chunk ending in
   * anything else (an SSE event's blank line) costs one set lookup per position.
   */
  const pending = (data: Buffer): number => {
    const max = Math.min(longest - 1, data.length)
    for (let k = max; k > 0; k--) {
      const at = data.length - k
      if (!firstBytes.has(data[at]!)) continue
      for (const { value } of literals) {
        if (value.length > k && value.compare(data, at, data.length, 0, k) === 0) return k
      }
    }
    return 0
  }

  return {
    push(chunk) {
      const data = replaceAll(carry.length ? Buffer.concat([carry, chunk]) : chunk)
      const hold = pending(data)
      carry = hold ? Buffer.from(data.subarray(data.length - hold)) : EMPTY
      return hold ? data.subarray(0, data.length - hold) : data
    },
    end() {
      const rest = carry
      carry = EMPTY
      return rest
    },
  }
}
