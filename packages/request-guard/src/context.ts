import type { Request, Response } from 'express'
import type { Endpoint } from './endpoints'

/** One request as the guard sees it, made once per request and passed to every step. */
export interface Ctx {
  req: Request
  res: Response
  endpoint: Endpoint
  pathname: string
  /** The request stream has not been read to its end: close the connection after answering. */
  bodyUnread: boolean
}
