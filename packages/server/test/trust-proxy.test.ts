import { openaiBody, startHarness, type Harness } from './helpers'

/**
 * server.trust_proxy as a hop count: behind one proxy (which appends the address it saw to
 * X-Forwarded-For), the gateway takes the address the proxy appended, never one the client wrote.
 * A tenant who forges another's address in X-Forwarded-For spends its own per-address budget, and
 * the other tenant is not limited (as it would be were the count read as "trust every hop").
 */

const VICTIM = '203.0.113.5'
const ATTACKER = '198.51.100.7'

/** A request as the one proxy in front forwards it: the client's own X-Forwarded-For, then the address the proxy saw. */
const viaProxy = (h: Harness, clientSaw: string, clientWrote?: string): Promise<Response> =>
  fetch(`${h.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${h.key}`,
      'content-type': 'application/json',
      'x-forwarded-for': clientWrote ? `${clientWrote}, ${clientSaw}` : clientSaw,
    },
    body: JSON.stringify(openaiBody()),
  })

describe('trust_proxy as a hop count, against a forged X-Forwarded-For', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness((c) => {
      c.server.trust_proxy = 1
      c.server.security.rate_limiting = { enabled: true, requests_per_second: 0.01, burst: 2, per_ip: true }
    })
  })
  afterAll(() => h.close())

  it("charges the forger's own address: the tenant whose address was forged keeps its budget", async () => {
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) statuses.push((await viaProxy(h, ATTACKER, VICTIM)).status)
    expect(statuses).toEqual([200, 200, 429])
    // The refusal names the address the proxy saw, not the forged one.
    const refused = h.events.filter((e) => e.result === 'rate_limited' || (e.event_type === 'security_violation' && String(e.result).includes('limit')))
    expect(refused.map((e) => e.ip)).toContain(ATTACKER)
    expect(refused.map((e) => e.ip)).not.toContain(VICTIM)
    // The victim's own requests through the proxy still pass.
    expect((await viaProxy(h, VICTIM)).status).toBe(200)
    expect((await viaProxy(h, VICTIM)).status).toBe(200)
  })
})
