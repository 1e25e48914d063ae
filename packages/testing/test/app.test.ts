import { GatehouseConfigError } from '@gatehouse/core'
import { thrownGatehouseError } from '@gatehouse/testing'

describe('thrownGatehouseError', () => {
  it('returns the GatehouseError thrown', () => {
    const err = new GatehouseConfigError('GH_X_BAD', 'bad')
    expect(
      thrownGatehouseError(() => {
        throw err
      }),
    ).toBe(err)
  })

  it('throws when nothing is thrown, or something else is', () => {
    expect(() => thrownGatehouseError(() => 1)).toThrow('expected a throw')
    expect(() =>
      thrownGatehouseError(() => {
        throw new TypeError('plain')
      }),
    ).toThrow('expected a GatehouseError, got TypeError: plain')
  })
})
