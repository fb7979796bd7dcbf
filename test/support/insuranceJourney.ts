/**
 * The whole insurance journey as tests and the bench run it: `tally sim insurance` in its own process, the server
 * (ingest over an embedded MQTT broker, the HTTP API with the phone routes, a server key certified by a test
 * investor root), and a terminal on the simulated board over the real serial protocol (SerialRig) with its sync
 * client and InsurancePayment over MQTT. The phone is plain HTTP calls, as the phone page makes them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsQRModule from 'jsqr';
import { startTerminalSync, type TerminalSync } from '../../src/daemon/startSync.js';
import { mqttInsuranceLink } from '../../src/daemon/mqttInsuranceLink.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/scenario/embeddedServer.js';
import { SerialRig } from '../../src/scenario/SerialRig.js';
import { createServerStore } from '../../src/server/createServerStore.js';
import { createIngestServer, type IngestServer } from '../../src/server/IngestServer.js';
import { HttpInsurancePlatform } from '../../src/server/insurance/HttpInsurancePlatform.js';
import type { ServerStore } from '../../src/server/ServerStore.js';
import { qrImage } from '../../src/sim/qrDisplay.js';
import { InsurancePayment, type InsuranceLink } from '../../src/terminal/InsurancePayment.js';
import { silentLogger } from '../../src/util/logger.js';
import { freeLoopbackPort } from './freePort.js';
import { certifiedServerKey, type ServerKey } from './insuranceRig.js';
import type { PlatformProcess } from './insurancePlatform.js';
import { makeInvestor, provisionDataDir, type Investor } from './signedLedger.js';

/** The server's admin bearer token: the reconciliation needs it (or a console login) */
export const JOURNEY_ADMIN_TOKEN = 'insurance-journey-token-0123456789';

export interface TerminalSide {
  readonly rig: SerialRig;
  readonly sync: TerminalSync;
  readonly payment: InsurancePayment;
  readonly link: InsuranceLink;
  close(): Promise<void>;
}

export interface Journey {
  readonly investor: Investor;
  readonly signer: ServerKey;
  readonly broker: EmbeddedBroker;
  readonly store: ServerStore;
  server: IngestServer;
  readonly httpUrl: string;
  readonly terminalId: string;
  readonly dataDir: string;
  terminal: TerminalSide;
  /** Stops the server and starts it again on the same store (recover() runs at its start) */
  restartServer(): Promise<void>;
  /** Closes the terminal side and opens it again on the same data folder */
  restartTerminal(options?: { abrupt?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function startJourney(platform: PlatformProcess, options: { intervalS?: number; codeTtlMs?: number; voucherTtlMs?: number; reverseGraceMs?: number; terminalId?: string; platformTimeoutMs?: number } = {}): Promise<Journey> {
  const dir = mkdtempSync(join(tmpdir(), 'ins-journey-'));
  const investor = makeInvestor();
  const signer = certifiedServerKey(investor);
  const broker = await startEmbeddedBroker();
  const store = await createServerStore({ kind: 'sqlite', path: join(dir, 'server.db') });
  const httpPort = await freeLoopbackPort();
  const startServer = (): Promise<IngestServer> =>
    createIngestServer({
      store,
      rootPublicKey: investor.rootPublicKey,
      brokerUrl: broker.url,
      protocolVersion: 4,
      gapCheckMs: 500,
      workerThreads: 0,
      checkpointSigner: signer,
      httpPort,
      adminToken: JOURNEY_ADMIN_TOKEN,
      insurance: {
        platform: new HttpInsurancePlatform({ url: platform.url, timeoutMs: options.platformTimeoutMs ?? 2000 }),
        intervalS: options.intervalS ?? 1,
        ...(options.codeTtlMs !== undefined ? { codeTtlMs: options.codeTtlMs } : {}),
        ...(options.voucherTtlMs !== undefined ? { voucherTtlMs: options.voucherTtlMs } : {}),
        ...(options.reverseGraceMs !== undefined ? { reverseGraceMs: options.reverseGraceMs } : {}),
      },
    });
  const terminalId = options.terminalId ?? 'T-INS-1';
  const dataDir = join(dir, 'terminal');
  provisionDataDir(investor, dataDir, terminalId);
  const openTerminal = async (): Promise<TerminalSide> => {
    const rig = await SerialRig.start({ dataDir, device: { startDelayMs: 2, runMs: 5 } });
    const sync = startTerminalSync({ ledger: rig.terminal.ledger, dataDir, settings: { brokerUrl: broker.url, protocolVersion: 4, maxEntriesPerSecond: 100_000, pollMs: 50 }, log: silentLogger });
    await waitUntil('the terminal subscribed', () => sync.client.subscribed());
    const link = mqttInsuranceLink(sync.client);
    const payment = new InsurancePayment({ terminal: rig.terminal, link, panel: rig.backend });
    void payment.sendOutcomes();
    return {
      rig,
      sync,
      payment,
      link,
      close: async () => {
        payment.close();
        await sync.stop();
        await rig.close();
      },
    };
  };
  const journey: Journey = {
    investor,
    signer,
    broker,
    store,
    server: await startServer(),
    httpUrl: `http://127.0.0.1:${httpPort}`,
    terminalId,
    dataDir,
    terminal: await openTerminal(),
    async restartServer() {
      await journey.server.stop();
      journey.server = await startServer();
    },
    async restartTerminal() {
      await journey.terminal.close();
      journey.terminal = await openTerminal();
    },
    async close() {
      await journey.terminal.close().catch(() => undefined);
      await journey.server.stop().catch(() => undefined);
      await store.close();
      await broker.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return journey;
}

/** jsqr is CommonJS whose types declare an ES default: the function is the module's default's default */
const jsQR = (jsQRModule as unknown as { default: typeof jsQRModule.default }).default;

/** What a camera sees on the simulated board's display: the QR decoded from its pixels (jsQR), or undefined */
export function decodeBoardQr(rig: SerialRig): string | undefined {
  const shown = rig.firmware.panel.qr;
  if (!shown) return undefined;
  const image = qrImage(shown, 4);
  return jsQR(image.data, image.width, image.height)?.data;
}

/** The phone: open the link, give the e-credential, consent (or refuse); returns the consent's view */
export async function phonePays(httpUrl: string, userCode: string, options: { credential?: string; refuse?: boolean } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const post = async (path: string, body: unknown, cookie?: string) => {
    const res = await fetch(`${httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) }, body: JSON.stringify(body) });
    return { status: res.status, cookie: res.headers.get('set-cookie')?.split(';')[0], body: (await res.json()) as Record<string, unknown> };
  };
  const opened = await post('/api/insurance/phone/open', { code: userCode });
  if (opened.status !== 200) return opened;
  const phone = opened.cookie!;
  if (options.refuse) return post('/api/insurance/phone/refuse', { code: userCode }, phone);
  const quote = await post('/api/insurance/phone/quote', { code: userCode, credential: options.credential ?? 'EC-DEMO-0001' }, phone);
  if (quote.status !== 200) return quote;
  return post('/api/insurance/phone/consent', { code: userCode }, phone);
}
