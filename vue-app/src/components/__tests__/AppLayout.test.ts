import { describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia } from 'pinia'
import { createMemoryHistory, createRouter, useRoute } from 'vue-router'
import { i18n } from '@/i18n'
import AppLayout from '@/components/AppLayout.vue'

// A page that reads its id once, as the order page does: the layout must give another
// path a page of its own, and keep the page when only the query changes.
let setups = 0
const OrderPage = defineComponent({
  setup() {
    setups++
    const id = String(useRoute().params.id)
    return () => h('p', { class: 'shown' }, id)
  },
})

describe('AppLayout', () => {
  it('mounts a new page for another path, not for another query', async () => {
    const router = createRouter({
      history: createMemoryHistory(),
      routes: [{ path: '/', component: AppLayout, children: [{ path: 'orders/:id', component: OrderPage }] }],
    })
    await router.push('/orders/a')
    const w = mount({ template: '<RouterView />' }, { global: { plugins: [createPinia(), i18n, router] } })
    await flushPromises()
    expect(w.find('.shown').text()).toBe('a')
    await router.push('/orders/b')
    await flushPromises()
    expect(w.find('.shown').text()).toBe('b')
    expect(setups).toBe(2)
    await router.push('/orders/b?tab=history')
    await flushPromises()
    expect(setups).toBe(2)
    w.unmount()
  })
})
