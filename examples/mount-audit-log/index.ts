// Mount the Gatehouse access log and audit log in an Express app, then check the chain.
// Run from the repository root after `npm run build`:
//   GATEHOUSE_AUDIT_KEY=$(openssl rand -hex 32) TS_NODE_PROJECT=tsconfig.test.json \
//     node -r ts-node/register/transpile-only examples/mount-audit-log/index.ts
import express from 'express'
import { accessLog, createAuditLogger, verifyAuditLog } from '@gatehouse/audit-log'

const key = process.env.GATEHOUSE_AUDIT_KEY
if (!key) {
  console.error('set GATEHOUSE_AUDIT_KEY to 32 random bytes or more, e.g. $(openssl rand -hex 32)')
  process.exit(2)
}

const file = process.env.AUDIT_FILE ?? './logs/audit.log'
// Any logger with error, warn, info and debug: the audit log reports its own trouble there.
const logger = { error: console.error, warn: console.warn, info: console.error, debug: () => undefined }
const audit = createAuditLogger({ file, key, logger })

const app = express()
app.use(accessLog({ onEvent: audit.log, skip: (req) => req.path === '/healthz' }))
app.get('/healthz', (_req, res) => void res.json({ ok: true }))
app.post('/login', express.json(), (req, res) => {
  const ok = (req.body as { password?: unknown } | undefined)?.password === 'demo'
  audit.log({
    timestamp: new Date().toISOString(),
    event_type: ok ? 'auth_success' : 'auth_failure',
    ip: req.ip ?? 'unknown',
    result: ok ? 'ok' : 'invalid_password',
    // a secret in an event is masked before it is written
    details: { authorization: req.headers.authorization ?? null },
  })
  res.status(ok ? 200 : 401).json({ ok })
})

const port = Number(process.env.PORT ?? 3000)
const server = app.listen(port, '127.0.0.1', () => logger.info('listening', { url: `http://127.0.0.1:${port}` }))

process.on('SIGINT', () => {
  server.close()
  audit
    .close()
    .then(() => verifyAuditLog(file, key))
    .then((result) => {
      logger.info('audit chain checked', { ok: result.ok, lines: result.lines, failure: result.failure })
      process.exit(result.ok ? 0 : 1)
    })
    .catch((err: unknown) => {
      logger.error('audit log could not be closed', { error: err })
      process.exit(1)
    })
})
