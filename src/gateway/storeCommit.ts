/**
 * One group commit of the gateway's database, as the store thread runs it
 * (storeWorker.ts): plain data in, plain data out, so it crosses a
 * worker_threads port. Every writer of the database (the archive batch, the
 * payment link's MQTT packets, the department queue, the diode's handed-over
 * crossings) has its part, each in its own savepoint inside ONE transaction
 * (one fsync); a part's fault spares the others, a failed COMMIT fails them
 * all. The caller learns the outcome only after the COMMIT, and acknowledges
 * or sends nothing before it.
 */
import { DepartmentPatientSchema, departmentTopic, encodeCanonical, schemaProblem } from '../codecs/gateway/declared.js';
import { envelopeOf, type MappedMessage } from '../codecs/gateway/fromHl7.js';
import { isTallyError } from '../errors.js';
import type { ArchiveInput, DeliveryInput, GatewayStore, PendingCrossing, Verdict } from './GatewayStore.js';

/** A crossing as it travels to the store thread: its bytes, or the envelope to encode once its seq is known */
export type CrossingWire = { readonly topic: string } & ({ readonly payload: Uint8Array } | { readonly envelope: { readonly mapped: MappedMessage; readonly gatewayId: string; readonly acceptedAt: number } });

export interface ArchiveItemWire {
  readonly archive: ArchiveInput;
  readonly crossing?: CrossingWire;
  readonly delivery?: DeliveryInput;
  readonly keepPassedKey?: boolean;
  /** A department's ack: the verdict becomes 'delivered' when it was for a delivery waiting for it, else 'duplicate' */
  readonly ackDelivery?: { readonly deliveryId: number; readonly department: string };
}

export type PacketOp = { readonly kind: 'put'; readonly messageId: number; readonly packet: string; readonly crossingSeq?: number } | { readonly kind: 'del'; readonly messageId: number };

export interface DeliveryRun {
  readonly now: number;
  readonly ackTimeoutMs: number;
  readonly maxAttempts: number;
  /** Two-way: wait for the department's ack; one-way: handed over once sent */
  readonly twoWay: boolean;
}

export interface CommitRequest {
  readonly id: number;
  readonly archive?: readonly ArchiveItemWire[];
  readonly packets?: readonly PacketOp[];
  readonly deliveries?: DeliveryRun;
  /** Crossings handed over by other means than the MQTT store (the diode) */
  readonly handedCrossings?: readonly number[];
}

export interface ArchivedPart {
  readonly seqs: number[];
  readonly verdicts: Verdict[];
  readonly booked: [string, number][];
  readonly crossings: PendingCrossing[];
}

export interface PartFault {
  readonly code: string;
  readonly message: string;
}

export interface CommitReply {
  readonly id: number;
  /** The COMMIT itself failed: nothing of this request is kept */
  readonly fault?: PartFault;
  /** The archive's part: each item's seq and verdict, the registrations counted, the crossings now in the outbox */
  readonly archive?: ArchivedPart | { fault: PartFault };
  readonly packets?: { fault?: PartFault };
  readonly deliveries?: { sends: [string, Uint8Array][]; dead: ArchiveInput[] } | { fault: PartFault };
  readonly handedCrossings?: { fault?: PartFault };
  /** Time the COMMIT (and its fsync) took in the store thread, ms */
  readonly commitMs: number;
}

function faultOf(err: unknown): PartFault {
  return { code: isTallyError(err) ? err.code : 'GW_ARCHIVE_FAULT', message: (err as Error).message };
}

/** The department queue's part: due tries marked sent (or dead after the last), their messages returned to publish after the COMMIT */
function markDueDeliveries(store: GatewayStore, run: DeliveryRun): { sends: [string, Uint8Array][]; dead: ArchiveInput[] } {
  const sends: [string, Uint8Array][] = [];
  const dead: ArchiveInput[] = [];
  for (const d of store.dueDeliveries(run.now, 200)) {
    if (d.attempts >= run.maxAttempts) {
      store.markDead(d.deliveryId);
      dead.push({ time: run.now, direction: 'hospital-to-payment', type: 'department.patient', verdict: 'dead-letter', code: 'GW_DEAD_LETTER', reason: `delivery ${d.deliveryId} to ${d.department}: no ack after ${d.attempts} tries`, department: d.department });
      continue;
    }
    const attempt = d.attempts + 1;
    const message = { v: 1, type: 'department.patient', deliveryId: d.deliveryId, attempt, department: d.department, visitDate: d.visitDate, patient: JSON.parse(d.patient) as unknown, gatewaySeq: d.gatewaySeq };
    if (schemaProblem(DepartmentPatientSchema, message)) {
      store.markDead(d.deliveryId);
      continue;
    }
    store.markDeliverySent(d.deliveryId, attempt, run.twoWay ? run.now + run.ackTimeoutMs * 2 ** (attempt - 1) : Number.MAX_SAFE_INTEGER, run.twoWay ? 'sent' : 'handed');
    sends.push([departmentTopic(d.department, 'patient'), encodeCanonical(message)]);
  }
  return { sends, dead };
}

function appendArchive(store: GatewayStore, items: readonly ArchiveItemWire[]): ArchivedPart {
  return store.transaction(() => {
    const batch = items.map((item) => {
      let archive = item.archive;
      if (item.ackDelivery) archive = { ...archive, verdict: store.ackDelivery(item.ackDelivery.deliveryId, item.ackDelivery.department) ? 'delivered' : 'duplicate' };
      const c = item.crossing;
      const crossing = c ? { topic: c.topic, payload: 'payload' in c ? () => c.payload : (seq: number) => encodeCanonical(envelopeOf(c.envelope.mapped, c.envelope.gatewayId, seq, c.envelope.acceptedAt)) } : undefined;
      return { archive, crossing, delivery: item.delivery, keepPassedKey: item.keepPassedKey };
    });
    const { seqs, booked, crossings } = store.append(batch);
    return { seqs, verdicts: batch.map((b) => b.archive.verdict), booked: [...booked], crossings };
  });
}

/** Runs one request in one transaction; never throws (its faults are in the reply) */
export function runCommit(store: GatewayStore, request: CommitRequest): CommitReply {
  const reply: { -readonly [K in keyof CommitReply]: CommitReply[K] } = { id: request.id, commitMs: 0 };
  const part = <T>(work: () => T): T | { fault: PartFault } => {
    try {
      return store.transaction(work);
    } catch (err) {
      return { fault: faultOf(err) };
    }
  };
  const started = performance.now();
  try {
    store.atomically(() => {
      if (request.packets?.length) {
        const r = part(() => {
          for (const op of request.packets!) {
            if (op.kind === 'del') store.deletePacket(op.messageId);
            else store.storePacket(op.messageId, op.packet, op.crossingSeq);
          }
        });
        reply.packets = r && typeof r === 'object' && 'fault' in r ? r : {};
      }
      if (request.handedCrossings?.length) {
        const r = part(() => {
          for (const seq of request.handedCrossings!) store.deleteCrossing(seq);
        });
        reply.handedCrossings = r && typeof r === 'object' && 'fault' in r ? r : {};
      }
      if (request.archive?.length) reply.archive = part(() => appendArchive(store, request.archive!));
      if (request.deliveries) reply.deliveries = part(() => markDueDeliveries(store, request.deliveries!));
    });
  } catch (err) {
    return { id: request.id, fault: faultOf(err), commitMs: performance.now() - started };
  }
  reply.commitMs = performance.now() - started;
  return reply;
}
