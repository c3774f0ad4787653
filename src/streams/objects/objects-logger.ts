// The logging surface the objects stream uses; a pino Logger fits it.

/** Structured logger: a context object first, then a short message. */
export interface ObjectsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}
