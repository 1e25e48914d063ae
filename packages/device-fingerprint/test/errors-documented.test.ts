import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { DeviceFingerprintErrorCodes } from '@gatehouse/device-fingerprint'

describe('error codes', () => {
  it('documents every code in the README Errors table, with no stale ones', () => {
    expect(Object.keys(DeviceFingerprintErrorCodes).length).toBeGreaterThan(0)
    expect(errorsDocumented(join(__dirname, '..', 'README.md'), DeviceFingerprintErrorCodes)).toEqual({ missing: [], stale: [] })
  })

  it('uses the GH_DFP_ prefix, each code named after itself', () => {
    for (const [name, code] of Object.entries(DeviceFingerprintErrorCodes)) {
      expect(code).toBe(name)
      expect(code).toMatch(/^GH_DFP_[A-Z_]+$/)
    }
  })
})
