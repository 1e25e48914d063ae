import { nextTurn, sleep, waitFor } from '@gatehouse/testing'

describe('waitFor', () => {
  it('resolves with the time it took once the check is true', async () => {
    let n = 0
    const ms = await waitFor(() => ++n === 3, 1000, { every: 5 })
    expect(n).toBe(3)
    expect(ms).toBeGreaterThanOrEqual(0)
    expect(ms).toBeLessThan(1000)
  })

  it('takes async checks', async () => {
    let n = 0
    await waitFor(async () => (await nextTurn(), ++n >= 2), 1000)
    expect(n).toBe(2)
  })

  it('rejects after its bound, naming the check', async () => {
    const started = Date.now()
    await expect(waitFor(() => false, 50)).rejects.toThrow('waitFor: () => false still not true after 50 ms')
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('names what it waited for when told', async () => {
    await expect(waitFor(() => false, 20, { what: 'the replica' })).rejects.toThrow(
      'waitFor: the replica still not true after 20 ms',
    )
  })

  it('stays bounded when a check never settles', async () => {
    const started = Date.now()
    await expect(waitFor(() => new Promise<boolean>(() => undefined), 50)).rejects.toThrow('after 50 ms')
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('passes on a check that throws', async () => {
    await expect(
      waitFor(() => {
        throw new Error('boom')
      }, 50),
    ).rejects.toThrow('boom')
  })
})

describe('sleep', () => {
  it('waits at least the time given', async () => {
    const started = Date.now()
    await sleep(30)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
  })
})
