import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { MetricsErrorCodes } from '@gatehouse/metrics'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), MetricsErrorCodes)).toEqual({ missing: [], stale: [] })
})
