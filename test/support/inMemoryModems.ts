/** The SMS path in one process: both simulated modems on in-memory lines, driven by our AT driver (tests and the sms bench) */
import { SERVER_MODEM_NUMBER, TERMINAL_MODEM_NUMBER } from '../../src/sim/modem/ModemRig.js';
import { SimulatedModem } from '../../src/sim/modem/SimulatedModem.js';
import type { SimulatedSmsNetwork } from '../../src/sim/modem/SimulatedSmsNetwork.js';
import { createInMemoryPair } from '../../src/transports/InMemoryDuplex.js';
import { GsmModem } from '../../src/transports/modem/GsmModem.js';
import type { SchedulingClock } from '../../src/util/scheduler.js';

/**
 * The terminal's and the server's simulated modems on in-memory lines, each driven by our AT driver
 * (GsmModem) and initialised: the SMS path in one process, with time moved by hand where the scheduler is.
 */
export async function startInMemoryModems(clock: SchedulingClock, network: SimulatedSmsNetwork): Promise<{ terminalModem: SimulatedModem; serverModem: SimulatedModem; terminal: GsmModem; server: GsmModem }> {
  const terminalModem = new SimulatedModem({ number: TERMINAL_MODEM_NUMBER, network });
  const serverModem = new SimulatedModem({ number: SERVER_MODEM_NUMBER, network });
  const t = createInMemoryPair();
  const s = createInMemoryPair();
  terminalModem.attach(t.b);
  serverModem.attach(s.b);
  const terminal = new GsmModem(t.a, clock);
  const server = new GsmModem(s.a, clock);
  await terminal.initialise();
  await server.initialise();
  return { terminalModem, serverModem, terminal, server };
}
