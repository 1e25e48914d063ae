import { MemoryAlertStore } from '@gatehouse/alerts'

describe('MemoryAlertStore', () => {
  it('keeps at most maxSubjects windows, dropping the least recently hit', async () => {
    const store = new MemoryAlertStore({ maxSubjects: 3 })
    for (const ip of ['a', 'b', 'c']) store.hit('r', ip, 1000, 60_000, 3)
    store.hit('r', 'a', 1001, 60_000, 3) // a is now the most recent
    store.hit('r', 'd', 1002, 60_000, 3) // evicts b, the least recently hit
    expect(store.size).toBe(3)
    expect(store.hit('r', 'b', 1003, 60_000, 3)).toEqual({ count: 1, fire: false }) // b starts over (evicts c)
    expect(store.hit('r', 'a', 1004, 60_000, 3)).toEqual({ count: 3, fire: true }) // a kept its two
    await store.shutdown()
    expect(store.size).toBe(0)
  })

  it('caps the timestamps kept per window at the firing count', () => {
    const store = new MemoryAlertStore()
    let last = { count: 0, fire: false }
    for (let i = 0; i < 1000; i++) last = store.hit('r', 's', 1000 + i, 60_000, 5)
    expect(last).toEqual({ count: 5, fire: false })
    return store.shutdown()
  })
})
