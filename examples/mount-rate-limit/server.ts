// Run: npx tsc -b packages/rate-limit && npx ts-node --transpile-only -P tsconfig.test.json examples/mount-rate-limit/server.ts
// With REDIS_URL=redis://127.0.0.1:6379 the limits are shared by every instance on that Redis.
import { memoryStore, redisStore } from '@gatehouse/rate-limit'
import { createApp } from './app'

const store = process.env.REDIS_URL ? redisStore({ url: process.env.REDIS_URL }) : memoryStore()
const { app } = createApp({ store, onEvent: (event) => console.log(JSON.stringify(event)) })
const port = Number(process.env.PORT ?? 8080)
const server = app.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}`))

process.on('SIGTERM', () => {
  server.close(() => void store.shutdown())
})
