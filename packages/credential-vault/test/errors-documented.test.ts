import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { CredentialVaultErrorCodes } from '@gatehouse/credential-vault'

describe('error codes', () => {
  it('documents every code in the README Errors table, with no stale ones', () => {
    expect(Object.keys(CredentialVaultErrorCodes).length).toBeGreaterThan(0)
    expect(errorsDocumented(join(__dirname, '..', 'README.md'), CredentialVaultErrorCodes)).toEqual({ missing: [], stale: [] })
  })

  it('uses the GH_VAULT_ prefix, each code named after itself', () => {
    for (const [name, code] of Object.entries(CredentialVaultErrorCodes)) {
      expect(code).toBe(name)
      expect(code).toMatch(/^GH_VAULT_[A-Z_]+$/)
    }
  })
})
