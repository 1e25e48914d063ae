import { nextTurn } from '@gatehouse/testing'
import { batchedStage } from '../src/batch'

describe('batchedStage', () => {
  it('runs everything queued in one event-loop turn together, in order, in the next turn', async () => {
    const ran: string[] = []
    const stage = batchedStage<[string]>(
      (id) => void ran.push(id),
      () => undefined,
    )
    stage('a')
    stage('b')
    stage('c')
    expect(ran).toEqual([])
    await nextTurn()
    expect(ran).toEqual(['a', 'b', 'c'])
    // The next batch is scheduled afresh.
    stage('d')
    expect(ran).toEqual(['a', 'b', 'c'])
    await nextTurn()
    expect(ran).toEqual(['a', 'b', 'c', 'd'])
  })

  it("hands a handler's throw to onError with that item and runs the rest of the batch", async () => {
    const ran: string[] = []
    const errors: Array<[string, string]> = []
    const stage = batchedStage<[string]>(
      (id) => {
        if (id === 'bad') throw new Error('boom')
        ran.push(id)
      },
      (err, id) => void errors.push([id, (err as Error).message]),
    )
    for (const id of ['a', 'bad', 'c']) stage(id)
    await nextTurn()
    expect(ran).toEqual(['a', 'c'])
    expect(errors).toEqual([['bad', 'boom']])
  })

  it('queues what a handler queues into the following batch, not the running one', async () => {
    const ran: string[] = []
    const stage: (id: string) => void = batchedStage<[string]>(
      (id) => {
        ran.push(id)
        if (id === 'a') stage('a2')
      },
      () => undefined,
    )
    stage('a')
    stage('b')
    await nextTurn()
    expect(ran).toEqual(['a', 'b'])
    await nextTurn()
    expect(ran).toEqual(['a', 'b', 'a2'])
  })
})
