import type { RouteRecordRaw } from 'vue-router'
import { Box, Connection, Goods, List, ShoppingCart, User, Van } from '@element-plus/icons-vue'

// The feature routes: the single list of the app's pages. Each is a lazy import, so each
// page is its own chunk and the first page loads only what it shows. A route names the API
// operation its user needs (`meta.requires`, a permission from GET /api/v1/me, typed from
// the OpenAPI operationIds) and, to appear in the menu, `meta.menu`. The guard
// (guard.ts) sends a user without the permission to /forbidden; the menu (menu.ts) shows
// only what the user may open. Example:
//
//   {
//     path: '/ops/fulfilment',
//     name: 'ops-fulfilment',
//     component: () => import('@/views/ops/FulfilmentView.vue'),
//     meta: { requires: 'listFulfilment', menu: { label: 'nav.fulfilment', icon: Van, order: 22 } },
//   },
//
// Permission names (from edge/routes.go; see README): shoppers have listCatalog,
// createOrder, listOrders, getOrder, listOrderEvents, payOrder, cancelOrder,
// openLiveUpdates; operators have listOrders, getOrder, listOrderEvents,
// confirmPaymentOrder, failPaymentOrder, cancelOrder, shipOrder, deliverOrder, refundOrder,
// listInventory, getInventory, adjustInventory, listFulfilment, retryFulfilment,
// cancelFulfilment, getCluster, drainNode, openLiveUpdates; admins have the operator's
// plus getSimulation, putSimulation, listUsers, createUser, updateUser. Note that
// listOrders is shared by all roles: "my orders" requires createOrder (shoppers only) and
// the operators' order list shipOrder (staff only), so that each role sees its own entry.
export const featureRoutes: RouteRecordRaw[] = [
  // Shopper routes go here (views in src/views/shop/):
  //   /             catalog        requires listCatalog (or public: true), menu nav.catalog, order 10
  //                                (its view src/views/shop/CatalogView.vue is the first page whose
  //                                size the build checks; see vite.config.ts initialSize)
  //   /cart         cart           requires createOrder, menu nav.cart, order 11
  //   /orders       my orders      requires createOrder, menu nav.myOrders, order 12
  //   /orders/:id   order detail   requires getOrder, no menu
  {
    path: '/',
    name: 'catalog',
    component: () => import('@/views/shop/CatalogView.vue'),
    // Staff may read the catalog, but their menu (and first page) starts with the orders.
    meta: { requires: 'listCatalog', menu: { label: 'nav.catalog', icon: Goods, order: 10, for: 'createOrder' } },
  },
  {
    path: '/cart',
    name: 'cart',
    component: () => import('@/views/shop/CartView.vue'),
    meta: { requires: 'createOrder', menu: { label: 'nav.cart', icon: ShoppingCart, order: 11 } },
  },
  {
    path: '/orders',
    name: 'my-orders',
    component: () => import('@/views/shop/MyOrdersView.vue'),
    meta: { requires: 'createOrder', menu: { label: 'nav.myOrders', icon: List, order: 12 } },
  },
  {
    path: '/orders/:id',
    name: 'order',
    component: () => import('@/views/shop/OrderView.vue'),
    meta: { requires: 'getOrder' },
  },
  //
  // Operator and admin routes go here (views in src/views/ops/ and src/views/admin/):
  //   /ops/orders      requires shipOrder (staff only), menu nav.opsOrders, order 20
  //   /ops/inventory   requires listInventory, menu nav.inventory, order 21
  //   /ops/fulfilment  requires listFulfilment, menu nav.fulfilment, order 22
  //   /ops/cluster     requires getCluster, menu nav.cluster, order 23 (ECharts only in this chunk)
  //   /admin/users     requires listUsers, menu nav.users, order 30
  {
    path: '/ops/orders',
    name: 'ops-orders',
    component: () => import('@/views/ops/OrdersView.vue'),
    meta: { requires: 'shipOrder', menu: { label: 'nav.opsOrders', icon: List, order: 20 } },
  },
  {
    path: '/ops/inventory',
    name: 'ops-inventory',
    component: () => import('@/views/ops/InventoryView.vue'),
    meta: { requires: 'listInventory', menu: { label: 'nav.inventory', icon: Box, order: 21 } },
  },
  {
    path: '/ops/fulfilment',
    name: 'ops-fulfilment',
    component: () => import('@/views/ops/FulfilmentView.vue'),
    meta: { requires: 'listFulfilment', menu: { label: 'nav.fulfilment', icon: Van, order: 22 } },
  },
  {
    path: '/ops/cluster',
    name: 'ops-cluster',
    component: () => import('@/views/ops/ClusterView.vue'),
    meta: { requires: 'getCluster', menu: { label: 'nav.cluster', icon: Connection, order: 23 } },
  },
  {
    path: '/admin/users',
    name: 'admin-users',
    component: () => import('@/views/admin/UsersView.vue'),
    meta: { requires: 'listUsers', menu: { label: 'nav.users', icon: User, order: 30 } },
  },
]
