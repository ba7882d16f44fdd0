import { describe, expect, it } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { i18n } from '@/i18n'
import type { MemberStatus } from '@/api/cluster'
import { member as fixture } from '@/__tests__/clusterFixtures'
import MemberTable from '@/components/cluster/MemberTable.vue'

// Which rows offer a drain, and how states show: the page's rules on top of the server's
// (the server drains any member it is asked to, even the last one).

const member = (id: string, state: MemberStatus['state'] = 'active', extra: Partial<MemberStatus> = {}) =>
  fixture(id, { state, requests_per_second: 12.34, latency_p50_ms: 1.234, latency_p99_ms: 245.76, ...extra })

async function render(props: Partial<InstanceType<typeof MemberTable>['$props']> = {}) {
  const w = mount(MemberTable, {
    props: {
      members: [member('1'), member('2'), member('3')],
      departed: [],
      self: '1',
      drainRequested: new Set<string>(),
      mayDrain: true,
      ...props,
    },
    global: { plugins: [i18n] },
  })
  await flushPromises()
  return w
}

const drainButtons = (w: Awaited<ReturnType<typeof render>>) =>
  w.findAll('button').filter((b) => b.attributes('aria-label')?.startsWith('Drain node'))
const stateOf = (w: Awaited<ReturnType<typeof render>>, id: string) =>
  w.find(`[data-node="${id}"]`).element.closest('tr')!.querySelector('[data-state]')!.getAttribute('data-state')

describe('MemberTable', () => {
  it('offers a drain for every active node, and emits the member', async () => {
    const w = await render()
    const buttons = drainButtons(w)
    expect(buttons.map((b) => b.attributes('aria-label'))).toEqual([
      'Drain node 127.0.0.1:801',
      'Drain node 127.0.0.1:802',
      'Drain node 127.0.0.1:803',
    ])
    await buttons[1]!.trigger('click')
    expect(w.emitted('drain')?.[0]?.[0]).toMatchObject({ id: '2' })
    expect(w.text()).toContain('this node')
    expect(w.text()).toContain('1.23 ms / 246 ms')
    expect(w.text()).toContain('1m 15s')
  })

  it('offers none without the permission', async () => {
    const w = await render({ mayDrain: false })
    expect(drainButtons(w)).toHaveLength(0)
  })

  it('offers none for a leaving node, one already asked to drain, or the last active one', async () => {
    const w = await render({
      members: [member('1'), member('2', 'leaving'), member('3')],
      drainRequested: new Set(['3']),
    })
    expect(drainButtons(w)).toHaveLength(0) // 1 is the last node not leaving or asked to
    expect(w.text()).toContain('The last active node cannot be drained.')
    expect(stateOf(w, '2')).toBe('leaving')
    expect(stateOf(w, '3')).toBe('drainRequested')
    expect(w.text()).toContain('drain requested')
  })

  it('lists departed nodes as left, without figures or actions', async () => {
    const w = await render({ members: [member('1'), member('2')], departed: [member('3')] })
    expect(stateOf(w, '3')).toBe('left')
    const row = w.find('[data-node="3"]').element.closest('tr')!
    expect(row.textContent).not.toContain('246 ms')
    expect(row.querySelector('button')).toBeNull()
    expect(drainButtons(w)).toHaveLength(2)
  })

  it('says so when a node did not answer', async () => {
    const w = await render({ members: [member('1'), member('2', 'active', { activations: -1 })] })
    const row = w.find('[data-node="2"]').element.closest('tr')!
    expect(row.textContent).toContain('no answer')
  })
})
