import { join } from 'node:path'
import { errorsDocumented } from '@gatehouse/testing'
import { AuditLogErrorCodes } from '@gatehouse/audit-log'

it('documents every error code in the README and no other', () => {
  expect(errorsDocumented(join(__dirname, '..', 'README.md'), AuditLogErrorCodes)).toEqual({ missing: [], stale: [] })
})
