import type { components, operations } from './schema'

// Names for the generated schema types the app uses; import these rather than indexing
// components['schemas'] everywhere.
type S = components['schemas']
export type Session = S['Session']
export type Me = S['Me']
export type Role = S['Role']
export type Order = S['Order']
export type OrderAction = S['OrderAction']
export type OrderStatus = S['OrderStatus']
export type OrderEvent = S['Event']
export type WsEvent = S['WsEvent']
export type ErrorEnvelope = S['Error']
export type ErrorCode = S['ErrorCode']

/**
 * A permission is an operationId of the API (edge/routes.go Endpoints; GET /api/v1/me lists
 * the caller's), e.g. 'listFulfilment'. Route meta.requires takes one.
 */
export type Permission = keyof operations
