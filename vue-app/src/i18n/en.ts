import shop from './shop/en'
// English messages; the source of the key set. zh-CN.ts is typed as Messages, so a key
// missing there (or added only there) fails `npm run type-check`.
//
// Conventions: one top-level group per area (app, nav, auth, pages, live, errors); the
// shopper and operator pages add their own groups (shop.*, ops.*). errors.<code> is the
// text for an API error code (edge/envelope.go, actors/order/errors.go); `network` is a
// request that got no answer. Codes without an entry show the server's message.
import ops from './ops/en'
import cluster from './cluster/en'

const en = {
  app: {
    name: 'ordermesh',
    skipToContent: 'Skip to content',
    language: 'Language',
    logout: 'Log out',
    login: 'Log in',
    menu: 'Menu',
    openMenu: 'Open menu',
    closeMenu: 'Close menu',
    signedInAs: 'Signed in as {user} ({role})',
    roles: { shopper: 'shopper', operator: 'operator', admin: 'admin' },
  },
  // Labels of menu entries (route meta.menu.label); the feature pages add theirs here.
  nav: {
    catalog: 'Catalog',
    cart: 'Cart',
    myOrders: 'My orders',
    opsOrders: 'Orders',
    inventory: 'Inventory',
    fulfilment: 'Fulfilment',
    cluster: 'Cluster',
    users: 'Users',
  },
  auth: {
    username: 'Username',
    password: 'Password',
    confirmPassword: 'Confirm password',
    loginTitle: 'Log in to ordermesh',
    signupTitle: 'Create an account',
    submitLogin: 'Log in',
    submitSignup: 'Sign up',
    noAccount: 'No account yet?',
    haveAccount: 'Already have an account?',
    signupLink: 'Sign up',
    loginLink: 'Log in',
    required: 'Enter your {field}.',
    usernameRule: 'A username has 3 to 32 characters: a-z, 0-9, ".", "_" and "-".',
    passwordRule: 'A password has 10 to 72 characters.',
    passwordMismatch: 'The passwords do not match.',
    signedUp: 'Your account was created.',
  },
  pages: {
    forbidden: {
      title: 'Not allowed',
      body: 'Your account ({role}) may not open {path}.',
      bodyNoPath: 'Your account may not open this page.',
      home: 'Go to the start page',
    },
    notFound: {
      title: 'Page not found',
      body: 'There is no page at {path}.',
      home: 'Go to the start page',
    },
    sessionExpired: {
      title: 'Your session has ended',
      body: 'You were logged out (the session expired or was ended elsewhere). Log in again to continue.',
      login: 'Log in again',
    },
    error: {
      title: 'Something went wrong',
      body: 'The request could not be completed.',
      requestId: 'Request ID (quote it when you report the problem)',
      noRequestId: 'No request ID: the server was not reached.',
      retry: 'Try again',
      home: 'Go to the start page',
    },
    welcome: {
      title: 'Welcome, {user}',
      body: 'Choose a page from the menu.',
    },
  },
  // An order anywhere in the app: status names, action buttons, reasons, event names.
  order: {
    status: {
      RESERVING: 'Reserving stock',
      CREATED: 'Awaiting payment',
      PAYING: 'Paying',
      PAID: 'Paid',
      SHIPPED: 'Shipped',
      DELIVERED: 'Delivered',
      CLOSED: 'Closed',
      REFUNDED: 'Refunded',
      REJECTED: 'Rejected',
    },
    action: {
      pay: 'Pay',
      'confirm-payment': 'Confirm payment',
      'fail-payment': 'Fail payment',
      cancel: 'Cancel order',
      ship: 'Ship',
      deliver: 'Mark delivered',
      refund: 'Refund',
    },
    actionDone: '{action}: done.',
    reason: {
      cancelTitle: 'Cancel the order',
      cancelBody: 'Cancel order {id}? You may give a reason.',
      refundTitle: 'Refund the order',
      refundBody: 'Refund order {id} in full. Give the reason (kept in the order’s history for staff).',
      placeholder: 'Reason',
      required: 'A refund needs a reason.',
      tooLong: 'At most 500 characters.',
      back: 'Back',
    },
    event: {
      OrderCreated: 'Order placed',
      StockReserved: 'Stock reserved',
      OrderRejected: 'Rejected (out of stock)',
      PaymentSubmitted: 'Payment submitted',
      PaymentConfirmed: 'Payment confirmed',
      PaymentFailed: 'Payment failed',
      PaymentExpired: 'Payment expired',
      OrderCancelled: 'Cancelled',
      OrderShipped: 'Shipped',
      OrderDelivered: 'Delivered',
      OrderRefunded: 'Refunded',
      OrderExpired: 'Expired unpaid',
    },
  },
  shop,
  live: {
    reconnecting: 'Live updates lost; reconnecting…',
    closed: 'Live updates are off. Reload the page to try again.',
  },
  ops,
  cluster,
  errors: {
    network: 'The server could not be reached. Check your connection and try again.',
    unknown: 'Unexpected error.',
    40000: 'The request was malformed.',
    40100: 'Wrong username or password, or your session has ended.',
    40300: 'You are not allowed to do this.',
    40400: 'Not found.',
    40401: 'No such endpoint.',
    40500: 'This action is not allowed here.',
    40900: 'This is not possible in the order’s current state.',
    40901: 'It exists already.',
    40902: 'Not enough stock.',
    41300: 'The request is too large.',
    43100: 'The request headers are too large.',
    42200: 'Some values are not valid.',
    42201: 'This request was already sent with other content.',
    42202: 'The same product appears twice.',
    42203: 'The order is too large.',
    42900: 'Too many requests; wait a moment and try again.',
    50000: 'Internal error.',
    50300: 'The service is busy; try again.',
  },
}

export type Messages = typeof en
export default en
