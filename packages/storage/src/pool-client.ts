import type { Pool, PoolClient } from 'pg'

/**
 * Run `fn` on a client checked out of `pool`. A connection that dies while checked out emits
 * 'error' on the client, which pg leaves to us; such a client, or one whose work failed, is
 * released as broken, so pg discards it instead of handing it out again.
 */
export async function withPoolClient<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  const onError = (err: Error): void => {
    broken = err
  }
  client.on('error', onError)
  try {
    return await fn(client)
  } catch (err) {
    broken = err instanceof Error ? err : new Error(String(err))
    throw err
  } finally {
    client.release(broken)
    client.removeListener('error', onError)
  }
}
