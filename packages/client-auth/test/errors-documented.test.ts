import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { ClientAuthErrorCodes } from '@gatehouse/client-auth'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), ClientAuthErrorCodes)).toEqual({ missing: [], stale: [] })
})
