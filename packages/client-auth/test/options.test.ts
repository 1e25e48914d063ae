import { randomBytes } from 'node:crypto'
import express from 'express'
import { clientAuth, MemoryKeyStore, type ClientAuthOptions } from '@gatehouse/client-auth'

const store = new MemoryKeyStore(randomBytes(32))

describe('clientAuth options', () => {
  it.each<[unknown, string]>([
    [{}, 'GH_AUTH_STORE_INVALID'],
    [{ store: {} }, 'GH_AUTH_STORE_INVALID'],
    [{ store, honeytoken: [] }, 'GH_AUTH_UNKNOWN_OPTION'],
    [{ store, stripCredentials: 'yes' }, 'GH_AUTH_INVALID_OPTIONS'],
    [{ store, onEvent: 'log' }, 'GH_AUTH_INVALID_OPTIONS'],
    [{ store, logger: console.log }, 'GH_AUTH_INVALID_OPTIONS'],
  ])('rejects %j with %s', (options, code) => {
    expect(() => clientAuth(options as ClientAuthOptions)).toThrow(expect.objectContaining({ code }))
  })

  it('suggests the right spelling of a misspelled option', () => {
    expect(() => clientAuth({ store, honeytoken: [] } as unknown as ClientAuthOptions)).toThrow('did you mean "honeytokens"?')
  })

  it('never echoes a honeytoken in an error', () => {
    const secret = 'x'.repeat(3)
    let message = ''
    try {
      clientAuth({ store, honeytokens: [secret] })
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toContain('honeytokens[0]')
    expect(message).not.toContain('xxx')
  })

  it('detects app.use(clientAuth) passed without being called', () => {
    const app = express()
    expect(() => app.use(clientAuth as unknown as express.RequestHandler)).not.toThrow()
    const fakeReq = { headers: {}, method: 'GET', url: '/' }
    expect(() => clientAuth(fakeReq as unknown as ClientAuthOptions)).toThrow(expect.objectContaining({ code: 'GH_AUTH_NOT_CALLED' }))
  })
})
