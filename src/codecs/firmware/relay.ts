/** Relay family: enable the medical device for one use, and its session events. Pure. */
import { FirmwarePayloadError, PayloadReader, PayloadWriter, decodeUtf8, encodeUtf8 } from './payload.js';

export const MAX_FAULT_DETAIL = 64;

export interface RelayEnableBody {
  /** The ledger's use sequence number; every device event of this use carries it */
  readonly useSeq: number;
  /** The relay opens by itself after this long; 0: stays closed until RELAY_DISABLE */
  readonly maxMs: number;
}

export function encodeRelayEnable(body: RelayEnableBody): Uint8Array {
  return new PayloadWriter('relay enable').u32(body.useSeq, 'useSeq').u32(body.maxMs, 'maxMs').done();
}

export function parseRelayEnable(payload: Uint8Array): RelayEnableBody {
  const r = new PayloadReader(payload, 'relay enable');
  const body = { useSeq: r.u32('useSeq'), maxMs: r.u32('maxMs') };
  r.end();
  return body;
}

export interface DeviceStartedBody {
  readonly useSeq: number;
}

export function encodeDeviceStarted(body: DeviceStartedBody): Uint8Array {
  return new PayloadWriter('device started').u32(body.useSeq, 'useSeq').done();
}

export function parseDeviceStarted(payload: Uint8Array): DeviceStartedBody {
  const r = new PayloadReader(payload, 'device started');
  const body = { useSeq: r.u32('useSeq') };
  r.end();
  return body;
}

export const FinishReason = {
  /** The device signalled the end of its session */
  COMPLETED: 0,
  /** maxMs elapsed and the relay opened */
  TIME_LIMIT: 1,
  /** The host sent RELAY_DISABLE */
  DISABLED: 2,
} as const;

export type FinishReasonCode = (typeof FinishReason)[keyof typeof FinishReason];

export interface DeviceFinishedBody {
  readonly useSeq: number;
  readonly reason: FinishReasonCode;
  readonly runMs: number;
}

export function encodeDeviceFinished(body: DeviceFinishedBody): Uint8Array {
  return new PayloadWriter('device finished').u32(body.useSeq, 'useSeq').u8(body.reason, 'reason').u32(body.runMs, 'runMs').done();
}

export function parseDeviceFinished(payload: Uint8Array): DeviceFinishedBody {
  const r = new PayloadReader(payload, 'device finished');
  const useSeq = r.u32('useSeq');
  const reason = r.u8('reason');
  const runMs = r.u32('runMs');
  r.end();
  if (reason > FinishReason.DISABLED) throw new FirmwarePayloadError(`device finished: unknown reason ${reason}`);
  return { useSeq, reason: reason as FinishReasonCode, runMs };
}

export const FaultCode = {
  /** The device did not report a start after the relay closed */
  START_FAILED: 1,
  /** The device reported a fault while running */
  RUN_FAULT: 2,
  /** The relay itself failed (contact welded or open) */
  RELAY_FAULT: 3,
} as const;

export type FaultCodeValue = (typeof FaultCode)[keyof typeof FaultCode];

export interface DeviceFaultBody {
  readonly useSeq: number;
  readonly code: FaultCodeValue;
  readonly detail: string;
}

export function encodeDeviceFault(body: DeviceFaultBody): Uint8Array {
  const detail = encodeUtf8(body.detail);
  if (detail.length > MAX_FAULT_DETAIL) throw new FirmwarePayloadError(`device fault: detail longer than ${MAX_FAULT_DETAIL} bytes`);
  return new PayloadWriter('device fault').u32(body.useSeq, 'useSeq').u8(body.code, 'code').bytes(detail).done();
}

export function parseDeviceFault(payload: Uint8Array): DeviceFaultBody {
  const r = new PayloadReader(payload, 'device fault');
  const useSeq = r.u32('useSeq');
  const code = r.u8('code');
  const detailBytes = r.rest();
  if (code < FaultCode.START_FAILED || code > FaultCode.RELAY_FAULT) throw new FirmwarePayloadError(`device fault: unknown code ${code}`);
  if (detailBytes.length > MAX_FAULT_DETAIL) throw new FirmwarePayloadError(`device fault: detail longer than ${MAX_FAULT_DETAIL} bytes`);
  return { useSeq, code: code as FaultCodeValue, detail: decodeUtf8(detailBytes, 'device fault: detail') };
}

/** GET_SESSION (protocol 2): what the board's relay is doing now (serial-protocol.md §6.6) */
export const SessionState = {
  /** Relay open, no use: after a boot, or once the last use ended (its end event sent before this answer) */
  IDLE: 0,
  /** Relay closed for useSeq, the device has not reported its start */
  ENABLED: 1,
  /** Relay closed for useSeq, the device is running */
  RUNNING: 2,
} as const;

export type SessionStateCode = (typeof SessionState)[keyof typeof SessionState];

export interface SessionBody {
  readonly state: SessionStateCode;
  /** The use the relay is closed for; 0 when idle */
  readonly useSeq: number;
  /** Milliseconds since the relay closed for it; 0 when idle */
  readonly elapsedMs: number;
}

export function encodeSession(body: SessionBody): Uint8Array {
  return new PayloadWriter('session').u8(body.state, 'state').u32(body.useSeq, 'useSeq').u32(body.elapsedMs, 'elapsedMs').done();
}

export function parseSession(payload: Uint8Array): SessionBody {
  const r = new PayloadReader(payload, 'session');
  const state = r.u8('state');
  const useSeq = r.u32('useSeq');
  const elapsedMs = r.u32('elapsedMs');
  r.end();
  if (state > SessionState.RUNNING) throw new FirmwarePayloadError(`session: unknown state ${state}`, 'state');
  if (state === SessionState.IDLE && (useSeq !== 0 || elapsedMs !== 0)) throw new FirmwarePayloadError('session: an idle relay names no use', 'useSeq');
  return { state: state as SessionStateCode, useSeq, elapsedMs };
}
