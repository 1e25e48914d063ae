import type { NextFunction, Request } from 'express'
import type { Ctx } from './context'
import type { Answers } from './answers'
import { tooLarge } from './refusal'

/** How much of a refused body is read and discarded before the connection is closed instead. */
const DISCARD_LIMIT = 64 * 1024 * 1024

/**
 * Read and discard the rest of a refused request's body, so that the connection stays readable
 * until the client has sent it; destroyed once more than DISCARD_LIMIT bytes arrive. False when
 * the declared length is already past the bound (the caller then closes the connection).
 */
export function discardRest(req: Request): boolean {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (!(declared <= DISCARD_LIMIT)) return false
  let seen = 0
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length
    if (seen > DISCARD_LIMIT) req.socket.destroy()
  })
  req.resume()
  return true
}

/**
 * Read the whole body (at most `limit` bytes) and hand it to `onBody`; a body past the limit is
 * refused (413) as soon as it is counted. An exception thrown by `onBody` goes to `next`.
 */
export function readBody(
  ctx: Ctx,
  next: NextFunction,
  answers: Answers,
  limit: number,
  onBody: (ctx: Ctx, next: NextFunction, body: Buffer) => void,
): void {
  const { req } = ctx
  // The whole body is in the stream's buffer already (a small body comes in the packet with the
  // headers, and the layers before the guard let the parser get to it): take it now, with no
  // 'data' and 'end' round trips. Content-Length bounds the body, so all of it is there when the
  // buffer holds that many bytes.
  const declared = req.headers['content-length']
  const whole =
    req.complete ||
    (declared !== undefined &&
      req.headers['transfer-encoding'] === undefined &&
      req.readableLength === Number(declared))
  if (whole && !req.readableFlowing && req.listenerCount('data') === 0) {
    if (req.readableLength > limit) return answers.refuse(ctx, tooLarge(limit))
    const body = req.read() as Buffer | null
    ctx.bodyUnread = false
    const check = (): void => {
      try {
        onBody(ctx, next, body ?? Buffer.alloc(0))
      } catch (err) {
        next(answers.internalError(err))
      }
    }
    // Hand on only once the stream has emitted 'end' (reading the last bytes schedules it): a
    // proxy that pipes the request after this point then ends its upstream request on a later
    // tick, after the upstream socket is assigned and forwardBody has written the body. With
    // 'end' still pending, the pipe would end the upstream request first, with the client's
    // headers and no body.
    if (req.readableEnded) check()
    else {
      // Every declared byte is read; flowing mode lets the stream emit 'end' once the parser
      // has seen the end of the message (which, for an empty body, may not have happened yet).
      req.once('end', check)
      req.resume()
    }
    return
  }
  const chunks: Buffer[] = []
  let size = 0
  const cleanup = (): void => {
    req.off('data', onData)
    req.off('end', onEnd)
    req.off('error', onGone)
    req.off('close', onClose)
  }
  function onData(chunk: Buffer): void {
    size += chunk.length
    if (size > limit) {
      cleanup()
      req.pause()
      chunks.length = 0
      answers.refuse(ctx, tooLarge(limit))
      return
    }
    chunks.push(chunk)
  }
  function onEnd(): void {
    cleanup()
    ctx.bodyUnread = false
    try {
      onBody(ctx, next, Buffer.concat(chunks, size))
    } catch (err) {
      next(answers.internalError(err))
    }
  }
  function onGone(): void {
    // The client went away mid-body: there is no one to answer.
    cleanup()
    chunks.length = 0
    answers.log('debug', '@gatehouse/request-guard: client aborted while sending the body', {
      path: ctx.pathname,
    })
  }
  function onClose(): void {
    if (!req.readableEnded) onGone()
  }
  req.on('data', onData)
  req.on('end', onEnd)
  req.on('error', onGone)
  req.on('close', onClose)
}
