/** Overview: uses per day, week or month by clinic, terminal or agent, as a chart (uPlot, bundled) with the numbers beside it */
import uPlot from 'uplot';
import { api, el, registerPage, t, table, type Row } from '../core.js';
import type { Key } from '../i18n.js';

const bucketTime = (bucket: string): number => Date.parse(bucket.length === 7 ? `${bucket}-01T00:00:00Z` : `${bucket}T00:00:00Z`) / 1000;
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

interface UseSeries {
  buckets: string[];
  groups: Array<{ key: string; uses: number[] }>;
  total: number;
}

/** The chart and its numbers come summed by the server from its daily roll-up; the CSV link gives the raw rows */
async function overview(main: HTMLElement): Promise<void> {
  const period = el('select', { id: 'period' }, ...['day', 'week', 'month'].map((p) => el('option', { value: p }, t[p as Key])));
  const by = el('select', { id: 'by' }, ...['clinic', 'terminal', 'agent'].map((p) => el('option', { value: p }, t[p as Key])));
  const chart = el('div', { id: 'chart' });
  const numbers = el('div', { id: 'numbers' });
  let generation = 0;
  const draw = async (mine: number): Promise<void> => {
    const series = await api<UseSeries>(`/api/uses/series?period=${period.value}&by=${by.value}`);
    if (mine !== generation) return;
    const label = (key: string): string => key || t.unassigned;
    chart.replaceChildren();
    if (series.buckets.length > 0) {
      // a chart of hundreds of lines says nothing: the eight largest are drawn, the table has them all
      const drawn = [...series.groups].sort((x, y) => y.uses.reduce((n, v) => n + v, 0) - x.uses.reduce((n, v) => n + v, 0)).slice(0, 8);
      const data: uPlot.AlignedData = [series.buckets.map(bucketTime), ...drawn.map((g) => g.uses)];
      new uPlot(
        { width: Math.min(720, window.innerWidth - 40), height: 300, series: [{}, ...drawn.map((g, i) => ({ label: label(g.key), stroke: COLOURS[i % COLOURS.length]!, width: 2, points: { show: series.buckets.length < 60 } }))], scales: { x: { time: true } }, axes: [{}, { label: t.uses }] },
        data,
        chart,
      );
    }
    const rows: Row[] = series.buckets.map((b, i) => ({ bucket: b, ...Object.fromEntries(series.groups.map((g) => [g.key, g.uses[i] ?? 0])) }));
    numbers.replaceChildren(
      table('overview-table', [{ key: 'bucket', label: period.value as Key }, ...series.groups.map((g) => ({ key: g.key, label: label(g.key), num: true }))], rows),
      el('p', {}, `${t.total}: `, el('strong', { id: 'overview-total' }, String(series.total))),
    );
  };
  const redraw = (): void => {
    const mine = ++generation;
    main.removeAttribute('data-ready');
    // only the latest choice draws and says ready: an earlier answer arriving late is dropped
    void draw(mine).then(() => mine === generation && main.setAttribute('data-ready', 'true'));
  };
  period.addEventListener('change', redraw);
  by.addEventListener('change', redraw);
  main.append(
    el('h1', {}, t.overview),
    el('div', { class: 'controls' }, el('label', {}, `${t.period} `, period), el('label', {}, `${t.by} `, by), el('a', { id: 'csv', href: '/api/export/uses.csv', download: 'uses.csv' }, t.csv)),
    el('div', { class: 'row' }, chart, numbers),
  );
  await draw(generation);
}

registerPage({ key: 'overview', label: () => t.overview, render: overview });
