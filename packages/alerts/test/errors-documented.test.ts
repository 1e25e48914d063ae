import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { AlertsErrorCodes } from '@gatehouse/alerts'

describe('error codes', () => {
  it('documents every code in the README Errors table, with no stale ones', () => {
    expect(Object.keys(AlertsErrorCodes).length).toBeGreaterThan(0)
    expect(errorsDocumented(join(__dirname, '..', 'README.md'), AlertsErrorCodes)).toEqual({ missing: [], stale: [] })
  })

  it('uses the GH_ALERTS_ prefix, each code named after itself', () => {
    for (const [name, code] of Object.entries(AlertsErrorCodes)) {
      expect(code).toBe(name)
      expect(code).toMatch(/^GH_ALERTS_[A-Z_]+$/)
    }
  })
})
