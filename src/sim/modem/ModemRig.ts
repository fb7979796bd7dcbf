/**
 * Two simulated modems (the terminal's and the server's) joined by a simulated
 * SMS network, each on its own socat pty pair: the daemon opens one path,
 * gammu (or a test) the other. What `tally sim modem` runs and the tests start.
 */
import type { ByteTransport } from '../../transports/ByteTransport.js';
import { startPtyPair, type PtyPair } from '../../transports/PtyPair.js';
import { openSerialTransport } from '../../transports/SerialPortTransport.js';
import { systemSchedulingClock, type SchedulingClock } from '../../util/scheduler.js';
import { SimulatedModem, type ModemFaults } from './SimulatedModem.js';
import { SimulatedSmsNetwork, type NetworkFaults } from './SimulatedSmsNetwork.js';

export const TERMINAL_MODEM_NUMBER = '+8613800000001';
export const SERVER_MODEM_NUMBER = '+8613900000002';

export interface ModemOnPty {
  readonly modem: SimulatedModem;
  /** The path the modem's user (daemon, gammu) opens */
  readonly path: string;
  /** Stop socat: the modem is unplugged (the user's port gets EIO / closes) */
  unplug(): Promise<void>;
  /** Start socat again on the same path and reattach the modem */
  plugIn(): Promise<void>;
}

export interface ModemRig {
  readonly network: SimulatedSmsNetwork;
  readonly terminal: ModemOnPty;
  readonly server: ModemOnPty;
  stop(): Promise<void>;
}

export interface ModemRigOptions {
  readonly clock?: SchedulingClock;
  readonly seed?: number;
  readonly network?: Partial<NetworkFaults>;
  readonly terminalFaults?: Partial<ModemFaults>;
  readonly serverFaults?: Partial<ModemFaults>;
  readonly dir?: string;
  readonly trace?: (who: 'terminal' | 'server', direction: 'in' | 'out', text: string) => void;
}

async function modemOnPty(modem: SimulatedModem, dir: string | undefined): Promise<ModemOnPty> {
  let pty: PtyPair = await startPtyPair(dir ? { dir } : {});
  const linkDir = pty.daemonPath.slice(0, pty.daemonPath.lastIndexOf('/'));
  let transport: ByteTransport = await openSerialTransport(pty.firmwarePath);
  modem.attach(transport);
  return {
    modem,
    path: pty.daemonPath,
    async unplug() {
      modem.detach();
      await transport.close().catch(() => undefined);
      await pty.stop();
    },
    async plugIn() {
      pty = await startPtyPair({ dir: linkDir });
      transport = await openSerialTransport(pty.firmwarePath);
      modem.attach(transport);
    },
  };
}

export async function startModemRig(options: ModemRigOptions = {}): Promise<ModemRig> {
  const clock = options.clock ?? systemSchedulingClock;
  const network = new SimulatedSmsNetwork(clock, { ...(options.seed !== undefined ? { seed: options.seed } : {}), ...(options.network ? { faults: options.network } : {}) });
  const trace = options.trace;
  const terminalModem = new SimulatedModem({ number: TERMINAL_MODEM_NUMBER, network, imei: '356938035643801', ...(options.terminalFaults ? { faults: options.terminalFaults } : {}), ...(trace ? { trace: (d, t) => trace('terminal', d, t) } : {}) });
  const serverModem = new SimulatedModem({ number: SERVER_MODEM_NUMBER, network, imei: '356938035643802', ...(options.serverFaults ? { faults: options.serverFaults } : {}), ...(trace ? { trace: (d, t) => trace('server', d, t) } : {}) });
  const terminal = await modemOnPty(terminalModem, options.dir ? `${options.dir}/terminal` : undefined);
  const server = await modemOnPty(serverModem, options.dir ? `${options.dir}/server` : undefined);
  return {
    network,
    terminal,
    server,
    async stop() {
      await terminal.unplug();
      await server.unplug();
    },
  };
}
