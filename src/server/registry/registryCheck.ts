/**
 * Compares the registry with what the terminals report and raises an alert for
 * each disagreement: a batch loaded (or claimed) that no issuing station's
 * export knows (batch-not-registered), a terminal reporting for another clinic
 * than it is registered to (terminal-wrong-clinic). It runs beside the ingest
 * (IngestServer calls it on a timer), never inside a report's path: two
 * queries over the batches and terminals, not one per entry. An alert is
 * raised once per key; the keys already raised are remembered.
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
