import type { RequestHandler } from 'express'
import request from 'supertest'
import { createTestApp, recordingLogger } from '@gatehouse/testing'
import { createAlertEngine } from '@gatehouse/alerts'

describe('createAlertEngine options', () => {
  it('refuses a webhook URL that is not http(s) without quoting it', () => {
    const secret = 'hooks.example.com/services/T000/B000/abcdefghijklmnop'
    for (const webhookUrl of [`ftp://${secret}`, `not a url ${secret}`]) {
      let thrown: Error | undefined
      try {
        createAlertEngine({ notify: { webhookUrl } })
      } catch (err) {
        thrown = err as Error
      }
      expect(thrown).toMatchObject({ code: 'GH_ALERTS_INVALID_OPTIONS' })
      expect(thrown!.message).not.toContain('abcdefghijklmnop')
    }
  })

  it('warns about a plain-http webhook off loopback, showing only its origin', () => {
    const logger = recordingLogger()
    createAlertEngine({ logger, notify: { webhookUrl: 'http://hooks.example.com/services/T0/B0/secretpart123' } })
    expect(logger.calls).toEqual([expect.objectContaining({ level: 'warn', meta: { webhook: 'http://hooks.example.com' } })])
    expect(logger.text()).not.toContain('secretpart123')
  })

  it('detects the factory passed to app.use() uncalled', async () => {
    const res = await request(createTestApp(createAlertEngine as unknown as RequestHandler)).get('/').expect(500)
    expect(res.body).toMatchObject({ code: 'GH_ALERTS_NOT_CALLED' })
  })
})
