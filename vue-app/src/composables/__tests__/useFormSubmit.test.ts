import { describe, expect, it } from 'vitest'
import { ref } from 'vue'
import type { FormInstance } from 'element-plus'
import { ApiError } from '@/api'
import { useFormSubmit } from '@/composables/useFormSubmit'

// A stand-in for an Element Plus form: validate() resolves when valid, rejects otherwise.
const formThat = (valid: boolean) =>
  ref({ validate: () => (valid ? Promise.resolve(true) : Promise.reject(new Error('invalid'))) } as unknown as FormInstance)

describe('useFormSubmit', () => {
  it('sends nothing while the form is invalid', async () => {
    let sent = 0
    const { submit, busy } = useFormSubmit(formThat(false), async () => void sent++)
    await submit()
    expect(sent).toBe(0)
    expect(busy.value).toBe(false)
  })

  it('is busy while sending, and clears an earlier error on success', async () => {
    let release!: () => void
    let fail = true
    const { submit, busy, serverError } = useFormSubmit(formThat(true), () =>
      fail ? Promise.reject(new ApiError(409, 40901, 'exists', 'r-1')) : new Promise<void>((ok) => (release = ok)),
    )
    await submit()
    expect(serverError.value?.code).toBe(40901)
    expect(serverError.value?.message).toBe('It exists already.') // translated
    fail = false
    const p = submit()
    await Promise.resolve()
    await Promise.resolve()
    expect(busy.value).toBe(true)
    expect(serverError.value).toBeNull()
    release()
    await p
    expect(busy.value).toBe(false)
  })

  it('turns a failure that is not an ApiError into one', async () => {
    const { submit, serverError } = useFormSubmit(formThat(true), () => Promise.reject(new TypeError('boom')))
    await submit()
    expect(serverError.value).toBeInstanceOf(ApiError)
    expect(serverError.value?.code).toBe('unknown')
  })
})
