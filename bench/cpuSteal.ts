/**
 * How much CPU the virtual machine's host took away (steal) while a bench ran:
 * then every figure stretches, whatever the code. From /proc/stat; undefined
 * where there is none.
 */
import { readFileSync } from 'node:fs';

interface CpuTicks {
  /** user, nice, system, irq, softirq */
  readonly busy: number;
  readonly steal: number;
}

function cpuTicks(): CpuTicks | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
    return { busy: f[1]! + f[2]! + f[3]! + f[6]! + f[7]!, steal: f[8]! };
  } catch {
    return undefined;
  }
}

/** Starts counting; the function returned gives the steal since, in % of the CPU the machine wanted (busy + steal) */
export function measureSteal(): () => number | undefined {
  const before = cpuTicks();
  return () => {
    const after = cpuTicks();
    if (!before || !after) return undefined;
    const steal = after.steal - before.steal;
    return Number(((100 * steal) / Math.max(1, after.busy - before.busy + steal)).toFixed(1));
  };
}
