import { batchedStage } from '../src/gateway'

describe('batchedStage', () => {
  it('runs everything queued in one event-loop turn together, in order, in the next turn', async () => {
    const ran: string[] = []
    const stage = batchedStage<[string, string, (err?: unknown) => void]>((id) => void ran.push(id))
    const noop = (): void => undefined
    stage('a', '', noop)
    stage('b', '', noop)
    stage('c', '', noop)
    expect(ran).toEqual([])
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(ran).toEqual(['a', 'b', 'c'])
    // The next batch is scheduled afresh.
    stage('d', '', noop)
    expect(ran).toEqual(['a', 'b', 'c'])
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(ran).toEqual(['a', 'b', 'c', 'd'])
  })

  it("hands a handler's throw to that item's next and runs the rest of the batch", async () => {
    const ran: string[] = []
    const errors: Record<string, unknown> = {}
    const stage = batchedStage<[string, string, (err?: unknown) => void]>((id) => {
      if (id === 'bad') throw new Error('boom')
      ran.push(id)
    })
    for (const id of ['a', 'bad', 'c']) stage(id, '', (err) => (errors[id] = err))
    await new Promise<void>((resolve) => setImmediate(resolve))
    expect(ran).toEqual(['a', 'c'])
    expect(Object.keys(errors)).toEqual(['bad'])
    expect((errors.bad as Error).message).toBe('boom')
  })
})
