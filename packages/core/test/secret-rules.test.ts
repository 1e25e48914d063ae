import { SECRET_RULES, SECRET_RULE_IDS } from '../src'

describe('secret rule table', () => {
  it('has unique ids, a description and a reference for every rule', () => {
    expect(new Set(SECRET_RULE_IDS).size).toBe(SECRET_RULES.length)
    for (const r of SECRET_RULES) {
      expect(r.id).toMatch(/^[a-z0-9]+(?:-[a-z0-9]+)*$/)
      expect(r.description.length).toBeGreaterThan(0)
      expect(r.reference).toMatch(/^https:\/\//)
    }
  })

  // The masker's looser forms (maskPattern) too: an open-ended quantifier there made V8's regex
  // engine overflow its stack on a 4 MiB run of a prefix.
  it.each(SECRET_RULES.flatMap((r): Array<[string, string, string]> => [[r.id, r.pattern, r.flags ?? ''], ...(r.maskPattern ? [[`${r.id} (masking form)`, r.maskPattern, r.flags ?? ''] as [string, string, string]] : [])]))(
    '%s compiles and bounds every quantifier (no *, + or {n,}: linear time on hostile input)',
    (_id, pattern, flags) => {
      expect(() => new RegExp(pattern, `y${flags}`)).not.toThrow()
      // Unescaped * or + (outside a character class), or an open-ended {n,}.
      const unescaped = pattern.replace(/\\./g, '').replace(/\[[^\]]*\]/g, '')
      expect(unescaped).not.toMatch(/[*+]|\{\d+,\}/)
    },
  )

  it('is frozen', () => {
    expect(Object.isFrozen(SECRET_RULES)).toBe(true)
  })
})
