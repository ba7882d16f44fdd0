import { afterEach, describe, expect, it } from 'vitest'
import { setLocale } from '@/i18n'
import { money, dateTime } from '@/utils/format'

afterEach(() => setLocale('en'))

describe('format', () => {
  it('shows minor units in the currency’s own precision', () => {
    setLocale('en')
    expect(money(1250, 'EUR')).toBe('€12.50')
    expect(money(1250, 'JPY')).toBe('¥1,250')
    expect(money(5, 'XYZ1')).toBe('5 XYZ1')
  })

  it('follows the language', () => {
    setLocale('zh-CN')
    expect(money(1250, 'CNY')).toBe('¥12.50')
  })

  it('leaves a time it cannot read as it is', () => {
    expect(dateTime('not a time')).toBe('not a time')
    expect(dateTime('2026-01-02T03:04:05Z')).toMatch(/2026/)
  })
})
