import { readFile } from 'node:fs/promises'
import { fakeClock, FAKE_CLOCK_START, listen, type FakeClock } from '@gatehouse/testing'

let clock: FakeClock | undefined
afterEach(() => {
  clock?.restore()
  clock = undefined
})

describe('fakeClock', () => {
  it('starts at a fixed instant, or where told', () => {
    clock = fakeClock()
    expect(Date.now()).toBe(FAKE_CLOCK_START.getTime())
    expect(clock.now()).toBe(FAKE_CLOCK_START.getTime())
    clock.restore()
    clock = fakeClock({ now: new Date('2026-02-19T23:00:00.000Z') })
    expect(new Date().toISOString()).toBe('2026-02-19T23:00:00.000Z')
  })

  it('fires a timer only when advance() reaches it, and the promises it starts have settled', async () => {
    clock = fakeClock()
    const fired: string[] = []
    setTimeout(() => void Promise.resolve().then(() => fired.push('timeout')), 1000)
    const interval = setInterval(() => fired.push(`interval ${Date.now() - FAKE_CLOCK_START.getTime()}`), 400)
    await clock.advance(999)
    expect(fired).toEqual(['interval 400', 'interval 800'])
    await clock.advance(1)
    expect(fired).toEqual(['interval 400', 'interval 800', 'timeout'])
    clearInterval(interval)
  })

  it('runs a timer that starts real I/O, whose end until() then waits for', async () => {
    clock = fakeClock()
    let read = ''
    setTimeout(() => void readFile(__filename, 'utf8').then((text) => (read = text.slice(0, 6))), 60_000)
    await clock.advance(60_000)
    await clock.until(() => read !== '')
    expect(read).toBe('import')
  })

  it('keeps sockets working: a request over loopback is answered while the clock is fake', async () => {
    clock = fakeClock()
    const server = await listen((_req, res) => res.end(String(Date.now())))
    try {
      await clock.advance(5000)
      const answer = await (await fetch(server.url)).text()
      expect(Number(answer)).toBe(FAKE_CLOCK_START.getTime() + 5000)
    } finally {
      await server.close()
    }
  })

  it('until() waits for I/O on real turns without moving the clock, and is bounded in real time', async () => {
    clock = fakeClock()
    let read = ''
    void readFile(__filename, 'utf8').then((text) => (read = text.slice(0, 6)))
    await clock.until(() => read !== '', 5000, 'the file read')
    expect(read).toBe('import')
    expect(Date.now()).toBe(FAKE_CLOCK_START.getTime())
    await expect(clock.until(async () => false, 20, 'nothing')).rejects.toThrow('fakeClock.until: nothing still not true after 20 ms')
    expect(Date.now()).toBe(FAKE_CLOCK_START.getTime())
  })

  it('with timers: false fakes only Date: timers run on real time', async () => {
    clock = fakeClock({ timers: false })
    const before = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect(Date.now()).toBe(before)
    await clock.advance(3_600_000)
    expect(Date.now()).toBe(before + 3_600_000)
  })

  it('set() jumps without firing the timers in between', async () => {
    clock = fakeClock()
    const fired: number[] = []
    setTimeout(() => fired.push(Date.now()), 1000)
    clock.set(FAKE_CLOCK_START.getTime() + 10_000)
    expect(fired).toEqual([])
    await clock.advance(1000)
    expect(fired).toEqual([FAKE_CLOCK_START.getTime() + 11_000])
  })

  it('refuses to go backwards', async () => {
    clock = fakeClock()
    await expect(clock.advance(-1)).rejects.toThrow('the clock only moves forward')
  })

  it('restore() puts the real clock and timers back, and may be called twice', async () => {
    // Against the wall clock read before faking, not against the monotonic clock: a machine whose
    // clock is stepped (NTP) parts the two by seconds, while the fake one would read 1970.
    const real = Date.now()
    clock = fakeClock({ now: 0 })
    expect(Date.now()).toBe(0)
    clock.restore()
    clock.restore()
    expect(Math.abs(Date.now() - real)).toBeLessThan(60_000)
    await new Promise((resolve) => setTimeout(resolve, 1))
  })
})
