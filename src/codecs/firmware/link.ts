/**
 * Link control payloads. An ACK names the command it acknowledges (its SEQ is
 * the acknowledged frame's SEQ); a NAK adds a reason. Pure.
 */
import { NakReason, type NakReasonCode } from './commands.js';
import { FirmwarePayloadError, PayloadReader, PayloadWriter } from './payload.js';

export interface AckBody {
  readonly ackedCommand: number;
}

export interface NakBody {
  readonly nakedCommand: number;
  readonly reason: NakReasonCode;
}

export function encodeAck(body: AckBody): Uint8Array {
  return new PayloadWriter('ACK').u8(body.ackedCommand, 'ackedCommand').done();
}

export function parseAck(payload: Uint8Array): AckBody {
  const r = new PayloadReader(payload, 'ACK');
  const ackedCommand = r.u8('ackedCommand');
  r.end();
  return { ackedCommand };
}

const REASONS = new Set<number>(Object.values(NakReason));

export function encodeNak(body: NakBody): Uint8Array {
  return new PayloadWriter('NAK').u8(body.nakedCommand, 'nakedCommand').u8(body.reason, 'reason').done();
}

export function parseNak(payload: Uint8Array): NakBody {
  const r = new PayloadReader(payload, 'NAK');
  const nakedCommand = r.u8('nakedCommand');
  const reason = r.u8('reason');
  r.end();
  if (!REASONS.has(reason)) throw new FirmwarePayloadError(`NAK: unknown reason ${reason}`);
  return { nakedCommand, reason: reason as NakReasonCode };
}
