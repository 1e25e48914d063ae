import type { NextFunction, Request, RequestHandler, Response } from 'express'

/** Express 4 does not catch rejected promises: route them to `next(err)`. */
export function asyncHandler(
  fn: (req: Request, res: Response, next: NextFunction) => Promise<unknown>,
): RequestHandler {
  return function asyncHandlerMiddleware(req, res, next) {
    fn(req, res, next).catch(next)
  }
}
