// The API layer's public surface; import from '@/api'.
export { api, unwrap, refreshSession, clientVersion, type Payload } from './client'
export { ApiError, type ApiErrorCode } from './errors'
export { tokens, sessionExpired, setTokens, clearTokens, type Tokens } from './tokens'
export type * from './types'
export {
  actionPermission,
  allowedActions,
  sendAction,
  createOrder,
  listOrders,
  getOrder,
  listOrderEvents,
  type OrderPage,
} from './orders'
