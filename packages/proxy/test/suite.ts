import { MockUpstream } from '@gatehouse/testing'

/** A mock provider for one describe block: started before its tests, reset before each, closed after. */
export function providerForSuite(): { readonly upstream: MockUpstream } {
  const suite = {} as { upstream: MockUpstream }
  beforeAll(async () => {
    suite.upstream = await MockUpstream.start()
  })
  afterAll(() => suite.upstream.close())
  beforeEach(() => suite.upstream.reset())
  return suite
}
