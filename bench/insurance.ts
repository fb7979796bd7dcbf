/**
 * `npm run bench -- insurance`: an insurance payment at the terminal, from the QR shown on the simulated board to
 * the settlement committed in the terminal's ledger, p50/p95, with the platform (`tally sim insurance`, its own
 * process) answering at once and with 300 ms of delay (BENCH_INSURANCE_N payments each, default 20). The phone's
 * calls (open, quote, consent) are made at once after the QR, so the figure is the system's part: the phone
 * round trips, the platform's certificate query and settlement, the voucher signed, pushed over MQTT, verified
 * and written. Load and CPU steal beside.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { phonePays, startJourney } from '../test/support/insuranceJourney.js';
import { startPlatformProcess } from '../test/support/insurancePlatform.js';
import { measureSteal } from './cpuSteal.js';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function benchInsurance(): Promise<Record<string, number>> {
  const n = Number(process.env.BENCH_INSURANCE_N ?? 20);
  const figures: Record<string, number> = { loadBefore: Number(loadavg()[0]!.toFixed(2)) };
  const platform = await startPlatformProcess();
  const journey = await startJourney(platform, { intervalS: 5 });
  const steal = measureSteal();
  try {
    for (const delayMs of [0, 300]) {
      await platform.setFault(delayMs === 0 ? 'normal' : 'slow', delayMs);
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        let shownAt = 0;
        let shown: (code: string) => void;
        const qr = new Promise<string>((resolve) => (shown = resolve));
        const paying = journey.terminal.payment.pay({ item: 'OCT', amountFen: 12_000 }, (e) => {
          if (e.type === 'qr') {
            shownAt = performance.now();
            shown(e.userCode);
          }
        });
        await phonePays(journey.httpUrl, await qr);
        const outcome = await paying;
        if (!outcome.ok) throw new Error(`payment ${i} refused: ${outcome.code} ${outcome.detail}`);
        times.push(performance.now() - shownAt);
        await journey.terminal.rig.deviceIdle();
      }
      times.sort((a, b) => a - b);
      figures[`qrToCommitted_p50_ms_platform${delayMs}`] = Number(percentile(times, 50).toFixed(1));
      figures[`qrToCommitted_p95_ms_platform${delayMs}`] = Number(percentile(times, 95).toFixed(1));
    }
    figures.payments = 2 * n;
  } finally {
    Object.assign(figures, { stealPercent: steal() ?? NaN, loadAfter: Number(loadavg()[0]!.toFixed(2)) });
    await journey.close();
    await platform.close();
  }
  return figures;
}
