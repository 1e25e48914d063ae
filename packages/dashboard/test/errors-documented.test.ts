import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { DashboardErrorCodes } from '@gatehouse/dashboard'

describe('error codes', () => {
  it('documents every code in the README Errors table, with no stale ones', () => {
    expect(Object.keys(DashboardErrorCodes).length).toBeGreaterThan(0)
    expect(errorsDocumented(join(__dirname, '..', 'README.md'), DashboardErrorCodes)).toEqual({ missing: [], stale: [] })
  })

  it('uses the GH_DASHBOARD_ prefix, each code named after itself', () => {
    for (const [name, code] of Object.entries(DashboardErrorCodes)) {
      expect(code).toBe(name)
      expect(code).toMatch(/^GH_DASHBOARD_[A-Z_]+$/)
    }
  })
})
