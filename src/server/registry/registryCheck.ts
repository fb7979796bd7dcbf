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
 * Retired: the registry keeps no time of retirement, so the check takes the
 * moment it first sees a terminal retired (its own start, for one retired
 * already then) and alerts when the server receives an entry of a higher seq
 * after that. Entries received between the retirement and that first sight
 * (at most one check interval) are not counted; a backlog the terminal made
 * before retirement and sends afterwards is.
 */
import type { Clock } from '../../util/clock.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import type { Alert, ServerStore } from '../ServerStore.js';
import type { RegistryFindings } from './RegistryStore.js';

export class RegistryCheck {
  private readonly raised = new Set<string>();
  private readonly logger: Logger;
  /** Retired terminal -> when this check first saw it retired */
  private readonly retiredSince = new Map<string, number>();
  private readonly startedAt: number;
  private checked = false;

  constructor(
    private readonly store: ServerStore,
    private readonly clock: Clock,
    logger: Logger = silentLogger,
  ) {
    this.logger = logger.child({ module: 'server.registry' });
    this.startedAt = clock.now();
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
      ...this.retiredReporting(findings.retiredTerminals, at).map((t) => ({
        at,
        kind: 'terminal-retired-reporting' as const,
        terminalId: t.terminalId,
        key: `retired-reporting:${t.terminalId}`,
        detail: `terminal ${t.terminalId} is retired in the registry (clinic ${t.clinicCode}) but its entries keep arriving: seq ${t.highestSeq ?? 0} received ${new Date(t.lastReceivedAt ?? 0).toISOString()}`,
      })),
      ...findings.unregisteredTerminals.map((t) => ({
        at,
        kind: 'terminal-not-registered' as const,
        terminalId: t.terminalId,
        key: `unregistered-terminal:${t.terminalId}:${t.clinicCode}`,
        detail: `terminal ${t.terminalId} reports for clinic ${t.clinicCode}, which the registry lists ${t.listed} terminal(s) for, but is not registered`,
      })),
    ];
    this.checked = true;
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

  /** The retired terminals whose newest entry arrived after this check first saw them retired */
  private retiredReporting(retired: RegistryFindings['retiredTerminals'], at: number): RegistryFindings['retiredTerminals'] {
    const current = new Set(retired.map((t) => t.terminalId));
    // a terminal back in service starts afresh if it is retired again
    for (const id of this.retiredSince.keys()) if (!current.has(id)) this.retiredSince.delete(id);
    return retired.filter((t) => {
      let since = this.retiredSince.get(t.terminalId);
      if (since === undefined) {
        since = this.checked ? at : this.startedAt;
        this.retiredSince.set(t.terminalId, since);
      }
      return t.lastReceivedAt !== undefined && t.lastReceivedAt > since;
    });
  }
}
