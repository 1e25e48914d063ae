import { isGatehouseError } from '@gatehouse/core'
import { deviceFingerprint, type DeviceFingerprintOptions } from '@gatehouse/device-fingerprint'
import { cleanupDirs, tmpDir } from './helpers'

afterAll(cleanupDirs)

describe('deviceFingerprint options', () => {
  it.each<[string, (dir: string) => unknown, string, string]>([
    ['a missing dir', () => ({}), 'GH_DFP_INVALID_OPTIONS', 'dir: is required'],
    ['a misspelled option', (dir) => ({ dir, headr: 'X-Id' }), 'GH_DFP_UNKNOWN_OPTION', 'did you mean "header"?'],
    ['a header with a space', (dir) => ({ dir, header: 'X Device' }), 'GH_DFP_INVALID_OPTIONS', 'header: must match pattern'],
    ['a header with CRLF', (dir) => ({ dir, header: 'X-Id\r\nX-Evil' }), 'GH_DFP_INVALID_OPTIONS', 'header'],
    ['a credential header', (dir) => ({ dir, header: 'Authorization' }), 'GH_DFP_INVALID_OPTIONS', 'header: "Authorization" is reserved'],
    ['a framing header', (dir) => ({ dir, header: 'content-length' }), 'GH_DFP_INVALID_OPTIONS', 'is reserved'],
    ['a traversal file name', (dir) => ({ dir, fileName: '../../etc/x' }), 'GH_DFP_INVALID_OPTIONS', 'fileName: must match pattern'],
    ['a dot file name', (dir) => ({ dir, fileName: '.hidden' }), 'GH_DFP_INVALID_OPTIONS', 'fileName'],
    ['an empty salt', (dir) => ({ dir, salt: '' }), 'GH_DFP_INVALID_OPTIONS', 'salt'],
    ['a non-function onEvent', (dir) => ({ dir, onEvent: 'log' }), 'GH_DFP_INVALID_OPTIONS', 'onEvent: must be a function'],
    ['a host-identity option, gone in v2', (dir) => ({ dir, hostname: () => 'gw-1' }), 'GH_DFP_UNKNOWN_OPTION', 'hostname'],
    ['a bad logger', (dir) => ({ dir, logger: console.log }), 'GH_DFP_INVALID_OPTIONS', 'logger'],
    ['the factory passed uncalled', () => ({ headers: {}, method: 'GET', url: '/' }), 'GH_DFP_NOT_CALLED', 'without being called'],
  ])('rejects %s', (_name, make, code, message) => {
    let err: unknown
    try {
      deviceFingerprint(make(tmpDir()) as DeviceFingerprintOptions)
    } catch (e) {
      err = e
    }
    expect(isGatehouseError(err)).toBe(true)
    expect(err).toMatchObject({ code, name: 'GatehouseConfigError' })
    expect((err as Error).message).toMatch(/^@gatehouse\/device-fingerprint: /)
    expect((err as Error).message).toContain(message)
  })

  it('uses the documented defaults and never mutates its options', () => {
    const dir = tmpDir()
    const options = { dir, salt: undefined }
    const mw = deviceFingerprint(options)
    expect(options).toEqual({ dir, salt: undefined })
    expect(mw.header).toBe('x-device-fingerprint')
    expect(mw.fingerprint).toMatch(/^[0-9a-f]{64}$/)
  })
})
