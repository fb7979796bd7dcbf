/** The day a use is counted on: the remembered-day shortcut must agree with the calendar at every boundary. */
import { expect, it } from 'vitest';
import { dayOf } from '../../src/server/store/SqlServerStore.js';

it('gives the UTC day of any time, in any order, across day boundaries', () => {
  const boundary = Date.UTC(2026, 10, 22);
  const times = [boundary - 1, boundary, boundary + 1, boundary - 1, 0, -1, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 0, 1)];
  for (let i = 0; i < 20_000; i++) times.push(boundary + Math.floor((Math.random() - 0.5) * 10 * 86_400_000));
  for (const time of times) expect(dayOf(time)).toBe(new Date(time).toISOString().slice(0, 10));
});
