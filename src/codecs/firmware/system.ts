/** System family: device info, ping, reset, and the boot event. Pure. */
import { FirmwarePayloadError, PayloadReader, PayloadWriter } from './payload.js';

export const MAX_PING_NONCE = 32;
export const MAX_INFO_STRING = 32;

export interface DeviceInfo {
  readonly protocolVersion: number;
  /** Largest payload the device accepts */
  readonly maxPayload: number;
  readonly firmwareVersion: string;
  readonly hardwareId: string;
}

export function encodeDeviceInfo(info: DeviceInfo): Uint8Array {
  return new PayloadWriter('device info')
    .u8(info.protocolVersion, 'protocolVersion')
    .u16(info.maxPayload, 'maxPayload')
    .shortString(info.firmwareVersion, 'firmwareVersion', MAX_INFO_STRING)
    .shortString(info.hardwareId, 'hardwareId', MAX_INFO_STRING)
    .done();
}

export function parseDeviceInfo(payload: Uint8Array): DeviceInfo {
  const r = new PayloadReader(payload, 'device info');
  const info = {
    protocolVersion: r.u8('protocolVersion'),
    maxPayload: r.u16('maxPayload'),
    firmwareVersion: r.shortString('firmwareVersion', MAX_INFO_STRING),
    hardwareId: r.shortString('hardwareId', MAX_INFO_STRING),
  };
  r.end();
  return info;
}

/** PING carries a nonce the device echoes back unchanged */
export interface PingBody {
  readonly nonce: Uint8Array;
}

export function encodePing(body: PingBody): Uint8Array {
  if (body.nonce.length > MAX_PING_NONCE) throw new FirmwarePayloadError(`ping: nonce longer than ${MAX_PING_NONCE} bytes`);
  return body.nonce.slice();
}

export function parsePing(payload: Uint8Array): PingBody {
  if (payload.length > MAX_PING_NONCE) throw new FirmwarePayloadError(`ping: nonce longer than ${MAX_PING_NONCE} bytes`);
  return { nonce: payload.slice() };
}

export const BootReason = {
  POWER_ON: 0,
  RESET_COMMAND: 1,
  WATCHDOG: 2,
  BROWN_OUT: 3,
} as const;

export type BootReasonCode = (typeof BootReason)[keyof typeof BootReason];

/** Sent by the device after every start, before any other event: the host then re-syncs */
export interface BootBody {
  readonly reason: BootReasonCode;
  readonly protocolVersion: number;
  /** Differs from the previous boot's (random at power-on, then +1 per reset), so two reboots never look like one resent BOOT */
  readonly bootId: number;
}

export function encodeBoot(body: BootBody): Uint8Array {
  return new PayloadWriter('boot').u8(body.reason, 'reason').u8(body.protocolVersion, 'protocolVersion').u16(body.bootId, 'bootId').done();
}

export function parseBoot(payload: Uint8Array): BootBody {
  const r = new PayloadReader(payload, 'boot');
  const reason = r.u8('reason');
  const protocolVersion = r.u8('protocolVersion');
  const bootId = r.u16('bootId');
  r.end();
  if (reason > BootReason.BROWN_OUT) throw new FirmwarePayloadError(`boot: unknown reason ${reason}`);
  return { reason: reason as BootReasonCode, protocolVersion, bootId };
}
