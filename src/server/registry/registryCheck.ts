/**
 * Compares the registry with what the terminals report and raises an alert for
 * each disagreement: a batch loaded (or claimed) that no issuing station's
 * export knows (batch-not-registered), a terminal reporting for another clinic
 * than it is registered to (terminal-wrong-clinic), a terminal registered as
 * retired whose entries keep arriving (terminal-retired-reporting), and a
 * terminal the registry does not list reporting for a clinic the registry
 * lists terminals for (terminal-not-registered). It runs beside the ingest
 * (IngestServer calls it on a timer), never inside a report's path: a few
 * queries over the batches and terminals, not one per entry. An alert is
 * raised once per key; the keys already raised are remembered.
 *
 * Retired: the registry keeps when each terminal was retired (retiredAt), and
 * the check alerts when the server received the terminal's newest entry (its
 * highest seq) after that, whenever the check runs; a backlog the terminal made
 * before retirement and sends afterwards counts too. The key names the
 * retirement, so a terminal put back in service and retired again alerts
 * afresh. A retired row without a time (written straight to the store, not
 * through registryAdmin) raises nothing.
 */
import type { Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { Alert, ServerStore } from '../ServerStore.js';

export class RegistryCheck {
  private readonly raised = new Set<string>();
  private readonly logger: Logger;

  constructor(
    private readonly store: ServerStore,
    private readonly clock: Clock,
    logger: Logger = silentLogger,
  ) {
    this.logger = logger.child({ module: 'server.registry' });
  }

  /** Returns the alerts newly raised */
  async check(): Promise<Alert[]> {
    const findings = await this.store.registry.findings();
    const at = this.clock.now();
    const candidates: Alert[] = [
      ...findings.unregisteredBatches.map((b) => ({
        at,
        kind: 'batch-not-registered' as const,
        terminalId: b.terminalId,
        key: `unregistered-batch:${b.batchId}:${b.terminalId}`,
        detail: `batch ${b.batchNo} (${b.batchId}) of clinic ${b.clinicCode}, loaded on ${b.terminalId}, is in no issuing station's export`,
      })),
      ...findings.wrongClinicTerminals.map((t) => ({
        at,
        kind: 'terminal-wrong-clinic' as const,
        terminalId: t.terminalId,
        key: `wrong-clinic:${t.terminalId}:${t.reportedClinicCode}`,
        detail: `terminal ${t.terminalId} is registered to clinic ${t.registeredClinicCode} but reports for clinic ${t.reportedClinicCode}`,
      })),
      ...findings.retiredTerminals.flatMap(({ terminalId, clinicCode, retiredAt, highestSeq, lastReceivedAt }) =>
        retiredAt !== undefined && lastReceivedAt !== undefined && lastReceivedAt > retiredAt
          ? [
              {
                at,
                kind: 'terminal-retired-reporting' as const,
                terminalId,
                key: `retired-reporting:${terminalId}:${retiredAt}`,
                detail: `terminal ${terminalId} is retired in the registry (clinic ${clinicCode}) since ${new Date(retiredAt).toISOString()} but its entries keep arriving: seq ${highestSeq ?? 0} received ${new Date(lastReceivedAt).toISOString()}`,
              },
            ]
          : [],
      ),
      ...findings.unregisteredTerminals.map((t) => ({
        at,
        kind: 'terminal-not-registered' as const,
        terminalId: t.terminalId,
        key: `unregistered-terminal:${t.terminalId}:${t.clinicCode}`,
        detail: `terminal ${t.terminalId} reports for clinic ${t.clinicCode}, which the registry lists ${t.listed} terminal(s) for, but is not registered`,
      })),
    ];
    const raised: Alert[] = [];
    for (const alert of candidates) {
      if (this.raised.has(alert.key)) continue;
      if (await this.store.raiseAlert(alert)) {
        raised.push(alert);
        this.logger.warn({ kind: alert.kind, terminalId: alert.terminalId, detail: alert.detail }, 'alert');
      }
      this.raised.add(alert.key);
    }
    return raised;
  }
}
