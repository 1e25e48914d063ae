import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { StorageErrorCodes } from '@gatehouse/storage'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), StorageErrorCodes)).toEqual({ missing: [], stale: [] })
})
