import { i18n } from '@/i18n'
import type { ErrorCode } from './types'

/** The code of an ApiError: a server error code, or 'network' when no answer came. */
export type ApiErrorCode = ErrorCode | 'network' | 'unknown'

/**
 * ApiError is every failure of the API layer: the server's `{code, message}` envelope, or
 * no answer at all (code 'network', status 0). `message` is translated for the current
 * locale from errors.<code>, falling back to the server's message; show it to people,
 * switch on `code` in code. `requestId` is the X-Request-ID to quote in a report.
 */
export class ApiError extends Error {
  readonly status: number
  readonly code: ApiErrorCode
  readonly serverMessage: string
  readonly requestId: string | null

  constructor(status: number, code: ApiErrorCode, serverMessage: string, requestId: string | null) {
    super(translate(code, serverMessage))
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.serverMessage = serverMessage
    this.requestId = requestId
  }
}

function translate(code: ApiErrorCode, serverMessage: string): string {
  const key = `errors.${code}`
  if (i18n.global.te(key) || i18n.global.te(key, 'en')) return i18n.global.t(key)
  return serverMessage || i18n.global.t('errors.unknown')
}

/** fromResponse turns a failed response and its parsed body into an ApiError. */
export function fromResponse(response: Response, body: unknown, requestId?: string | null): ApiError {
  const id = response.headers.get('X-Request-ID') ?? requestId ?? null
  if (body && typeof body === 'object' && 'code' in body && typeof body.code === 'number') {
    const message = 'message' in body && typeof body.message === 'string' ? body.message : ''
    return new ApiError(response.status, body.code as ErrorCode, message, id)
  }
  return new ApiError(response.status, 'unknown', typeof body === 'string' ? body : response.statusText, id)
}

/** networkError is an ApiError for a request that got no answer. */
export function networkError(cause: unknown, requestId: string | null): ApiError {
  const e = new ApiError(0, 'network', cause instanceof Error ? cause.message : String(cause), requestId)
  return Object.assign(e, { cause })
}
