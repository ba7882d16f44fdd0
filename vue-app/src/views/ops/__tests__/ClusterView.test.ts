import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { createMemoryHistory, createRouter } from 'vue-router'
import { i18n } from '@/i18n'
import type { MemberStatus } from '@/api/cluster'
import { clusterStatus, member } from '@/__tests__/clusterFixtures'
import { useSessionStore } from '@/stores/session'
import { envelope, failure, fakeServer } from '@/__tests__/fakeServer'

// The drain flow of the cluster page: confirm first, then POST, then say what happened;
// a refused drain shows the translated error with the server's words. The dialog and the
// messages are Element Plus services, replaced here by spies.
const confirm = vi.fn()
const success = vi.fn()
const error = vi.fn()
vi.mock('element-plus/es', async (original) => ({
  ...(await original<typeof import('element-plus/es')>()),
  ElMessageBox: { confirm: (...a: unknown[]) => confirm(...a) },
  ElMessage: { success: (...a: unknown[]) => success(...a), error: (...a: unknown[]) => error(...a) },
}))

const { default: ClusterView } = await import('@/views/ops/ClusterView.vue')

const cluster = (members: MemberStatus[]) => clusterStatus(members, '1')

async function render() {
  setActivePinia(createPinia())
  const session = useSessionStore()
  vi.spyOn(session, 'can').mockImplementation((p) => p === 'drainNode' || p === 'getCluster')
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/:p(.*)*', component: { template: '<div/>' } }] })
  // Charts (canvas) and the live feed (socket) are not what these tests are about.
  const w = mount(ClusterView, {
    global: { plugins: [i18n, router], stubs: { ClusterChart: true, LiveFeed: true } },
    attachTo: document.body,
  })
  await flushPromises()
  return w
}

const drainButton = (w: Awaited<ReturnType<typeof render>>, id: string) =>
  w.findAll('button').find((b) => b.attributes('aria-label') === `Drain node 127.0.0.1:80${id}`)!

beforeEach(() => {
  vi.stubGlobal('matchMedia', undefined)
  confirm.mockReset()
  success.mockReset()
  error.mockReset()
})
afterEach(() => {
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('ClusterView drain', () => {
  it('drains only after the confirmation, then shows the node as asked to drain', async () => {
    const server = fakeServer({
      'GET /api/v1/cluster': () => envelope(cluster([member('1'), member('2'), member('3')])),
      'POST /api/v1/cluster/nodes/2/drain': () => envelope({ node: '2', state: 'leaving' }, 202),
    })
    const w = await render()

    confirm.mockRejectedValueOnce('cancel')
    await drainButton(w, '2').trigger('click')
    await flushPromises()
    expect(confirm).toHaveBeenCalledTimes(1)
    expect(confirm.mock.calls[0]![0]).toContain('hands its orders over to the other nodes')
    expect(server.sent('POST /api/v1/cluster/nodes/2/drain')).toHaveLength(0)

    confirm.mockResolvedValueOnce('confirm')
    await drainButton(w, '2').trigger('click')
    await flushPromises()
    expect(server.sent('POST /api/v1/cluster/nodes/2/drain')).toHaveLength(1)
    expect(success).toHaveBeenCalledWith('Node 127.0.0.1:802 is draining.')
    expect(w.find('[data-state="drainRequested"]').exists()).toBe(true)
    w.unmount()
  })

  it('warns when the node to drain is the one serving the page', async () => {
    fakeServer({ 'GET /api/v1/cluster': () => envelope(cluster([member('1'), member('2')])) })
    const w = await render()
    confirm.mockRejectedValueOnce('cancel')
    await drainButton(w, '1').trigger('click')
    expect(confirm.mock.calls[0]![0]).toContain('This is the node serving this page')
    w.unmount()
  })

  it('shows a refused drain translated, with the server message', async () => {
    fakeServer({
      'GET /api/v1/cluster': () => envelope(cluster([member('1'), member('2')])),
      'POST /api/v1/cluster/nodes/2/drain': () => failure(404, 40400, 'node 2 is not a member of the cluster'),
    })
    const w = await render()
    confirm.mockResolvedValueOnce('confirm')
    await drainButton(w, '2').trigger('click')
    await flushPromises()
    expect(error).toHaveBeenCalledTimes(1)
    expect(error.mock.calls[0]![0].message).toBe(
      'Could not drain node 127.0.0.1:802: Not found. (node 2 is not a member of the cluster)',
    )
    expect(w.find('[data-state="drainRequested"]').exists()).toBe(false)
    w.unmount()
  })
})
