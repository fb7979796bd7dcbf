/**
 * Step two of decoding: a checked Frame becomes a typed message, and back.
 * One table maps each command to its payload codecs (one file per family).
 * Pure.
 */
import type { ApduRequestBody, ApduResponseBody, CardInsertedBody, SlotBody } from './card.js';
import * as card from './card.js';
import { Command, RESPONSE_FLAG } from './commands.js';
import type { Frame } from './frame.js';
import { type AckBody, type NakBody, encodeAck, encodeNak, parseAck, parseNak } from './link.js';
import type { BuzzerBody, DisplayBody, DisplayQrBody, LedsBody } from './panel.js';
import * as panel from './panel.js';
import { FirmwarePayloadError, expectEmpty } from './payload.js';
import type { DeviceFaultBody, DeviceFinishedBody, DeviceStartedBody, RelayEnableBody, SessionBody } from './relay.js';
import * as relay from './relay.js';
import type { BootBody, DeviceInfo, PingBody } from './system.js';
import type { ChainHead, RelayEnableHeadBody, RelayEnableHeadResult } from './head.js';
import * as head from './head.js';
import * as system from './system.js';

export type Empty = Record<string, never>;

/** What the host may ask, by name */
export interface RequestBodies {
  'get-info': Empty;
  ping: PingBody;
  reset: Empty;
  'get-slot': Empty;
  apdu: ApduRequestBody;
  display: DisplayBody;
  buzzer: BuzzerBody;
  leds: LedsBody;
  'display-qr': DisplayQrBody;
  'relay-enable': RelayEnableBody;
  'relay-disable': Empty;
  'get-head': Empty;
  'relay-enable-head': RelayEnableHeadBody;
  'get-session': Empty;
}

/** What the device answers to each request */
export interface ResponseBodies {
  'get-info': DeviceInfo;
  ping: PingBody;
  reset: Empty;
  'get-slot': SlotBody;
  apdu: ApduResponseBody;
  display: Empty;
  buzzer: Empty;
  leds: Empty;
  'display-qr': Empty;
  'relay-enable': Empty;
  'relay-disable': Empty;
  'get-head': ChainHead;
  'relay-enable-head': RelayEnableHeadResult;
  'get-session': SessionBody;
}

/** What the device reports unasked */
export interface EventBodies {
  boot: BootBody;
  'card-inserted': CardInsertedBody;
  'card-removed': Empty;
  'device-started': DeviceStartedBody;
  'device-finished': DeviceFinishedBody;
  'device-fault': DeviceFaultBody;
}

export type RequestName = keyof RequestBodies;
export type EventName = keyof EventBodies;

export class UnknownCommandError extends FirmwarePayloadError {
  constructor(readonly command: number) {
    super(`unknown command 0x${command.toString(16).padStart(2, '0')}`);
  }
}

interface Codec<T> {
  encode(body: T): Uint8Array;
  parse(payload: Uint8Array): T;
}

function empty(what: string): Codec<Empty> {
  return { encode: () => new Uint8Array(0), parse: (payload) => expectEmpty(payload, what) };
}

const REQUESTS: { readonly [N in RequestName]: { readonly command: number; readonly request: Codec<RequestBodies[N]>; readonly response: Codec<ResponseBodies[N]> } } = {
  'get-info': { command: Command.GET_INFO, request: empty('get-info'), response: { encode: system.encodeDeviceInfo, parse: system.parseDeviceInfo } },
  ping: { command: Command.PING, request: { encode: system.encodePing, parse: system.parsePing }, response: { encode: system.encodePing, parse: system.parsePing } },
  reset: { command: Command.RESET, request: empty('reset'), response: empty('reset response') },
  'get-slot': { command: Command.GET_SLOT, request: empty('get-slot'), response: { encode: card.encodeSlot, parse: card.parseSlot } },
  apdu: { command: Command.APDU, request: { encode: card.encodeApduRequest, parse: card.parseApduRequest }, response: { encode: card.encodeApduResponse, parse: card.parseApduResponse } },
  display: { command: Command.DISPLAY, request: { encode: panel.encodeDisplay, parse: panel.parseDisplay }, response: empty('display response') },
  buzzer: { command: Command.BUZZER, request: { encode: panel.encodeBuzzer, parse: panel.parseBuzzer }, response: empty('buzzer response') },
  leds: { command: Command.LEDS, request: { encode: panel.encodeLeds, parse: panel.parseLeds }, response: empty('leds response') },
  'display-qr': { command: Command.DISPLAY_QR, request: { encode: panel.encodeDisplayQr, parse: panel.parseDisplayQr }, response: empty('display-qr response') },
  'relay-enable': { command: Command.RELAY_ENABLE, request: { encode: relay.encodeRelayEnable, parse: relay.parseRelayEnable }, response: empty('relay-enable response') },
  'relay-disable': { command: Command.RELAY_DISABLE, request: empty('relay-disable'), response: empty('relay-disable response') },
  'get-head': { command: Command.GET_HEAD, request: empty('get-head'), response: { encode: head.encodeHead, parse: head.parseHead } },
  'relay-enable-head': {
    command: Command.RELAY_ENABLE_HEAD,
    request: { encode: head.encodeRelayEnableHead, parse: head.parseRelayEnableHead },
    response: { encode: head.encodeRelayEnableHeadResult, parse: head.parseRelayEnableHeadResult },
  },
  'get-session': { command: Command.GET_SESSION, request: empty('get-session'), response: { encode: relay.encodeSession, parse: relay.parseSession } },
};

const EVENTS: { readonly [N in EventName]: { readonly command: number; readonly codec: Codec<EventBodies[N]> } } = {
  boot: { command: Command.BOOT, codec: { encode: system.encodeBoot, parse: system.parseBoot } },
  'card-inserted': { command: Command.CARD_INSERTED, codec: { encode: card.encodeCardInserted, parse: card.parseCardInserted } },
  'card-removed': { command: Command.CARD_REMOVED, codec: empty('card-removed') },
  'device-started': { command: Command.DEVICE_STARTED, codec: { encode: relay.encodeDeviceStarted, parse: relay.parseDeviceStarted } },
  'device-finished': { command: Command.DEVICE_FINISHED, codec: { encode: relay.encodeDeviceFinished, parse: relay.parseDeviceFinished } },
  'device-fault': { command: Command.DEVICE_FAULT, codec: { encode: relay.encodeDeviceFault, parse: relay.parseDeviceFault } },
};

const REQUEST_BY_COMMAND = new Map<number, RequestName>(Object.entries(REQUESTS).map(([name, spec]) => [spec.command, name as RequestName]));
const EVENT_BY_COMMAND = new Map<number, EventName>(Object.entries(EVENTS).map(([name, spec]) => [spec.command, name as EventName]));

export type RequestMessage = { [N in RequestName]: { readonly kind: 'request'; readonly seq: number; readonly name: N; readonly body: RequestBodies[N] } }[RequestName];
export type ResponseMessage = { [N in RequestName]: { readonly kind: 'response'; readonly seq: number; readonly name: N; readonly body: ResponseBodies[N] } }[RequestName];
export type EventMessage = { [N in EventName]: { readonly kind: 'event'; readonly seq: number; readonly name: N; readonly body: EventBodies[N] } }[EventName];

export type FirmwareMessage =
  | { readonly kind: 'ack'; readonly seq: number; readonly body: AckBody }
  | { readonly kind: 'nak'; readonly seq: number; readonly body: NakBody }
  | RequestMessage
  | ResponseMessage
  | EventMessage;

export function requestCommand(name: RequestName): number {
  return REQUESTS[name].command;
}

export function eventCommand(name: EventName): number {
  return EVENTS[name].command;
}

/** True for commands the receiver must acknowledge (everything but ACK and NAK) */
export function needsAck(command: number): boolean {
  return command !== Command.ACK && command !== Command.NAK;
}

/** Maps a checked frame to its typed message; throws FirmwarePayloadError (UnknownCommandError for an unknown CMD) */
export function parseMessage(frame: Frame): FirmwareMessage {
  const { seq, command, payload } = frame;
  if (command === Command.ACK) return { kind: 'ack', seq, body: parseAck(payload) };
  if (command === Command.NAK) return { kind: 'nak', seq, body: parseNak(payload) };
  const requestName = REQUEST_BY_COMMAND.get(command & ~RESPONSE_FLAG);
  if (requestName !== undefined) {
    const spec = REQUESTS[requestName];
    const isResponse = (command & RESPONSE_FLAG) !== 0;
    const body = isResponse ? spec.response.parse(payload) : spec.request.parse(payload);
    return { kind: isResponse ? 'response' : 'request', seq, name: requestName, body } as FirmwareMessage;
  }
  const eventName = EVENT_BY_COMMAND.get(command);
  if (eventName !== undefined) {
    return { kind: 'event', seq, name: eventName, body: EVENTS[eventName].codec.parse(payload) } as FirmwareMessage;
  }
  throw new UnknownCommandError(command);
}

/** The frame that carries a message; throws FirmwarePayloadError when a field is out of range */
export function encodeMessage(message: FirmwareMessage): Frame {
  const { seq } = message;
  switch (message.kind) {
    case 'ack':
      return { seq, command: Command.ACK, payload: encodeAck(message.body) };
    case 'nak':
      return { seq, command: Command.NAK, payload: encodeNak(message.body) };
    case 'request': {
      const spec = REQUESTS[message.name] as { command: number; request: Codec<unknown> };
      return { seq, command: spec.command, payload: spec.request.encode(message.body) };
    }
    case 'response': {
      const spec = REQUESTS[message.name] as { command: number; response: Codec<unknown> };
      return { seq, command: spec.command | RESPONSE_FLAG, payload: spec.response.encode(message.body) };
    }
    case 'event': {
      const spec = EVENTS[message.name] as { command: number; codec: Codec<unknown> };
      return { seq, command: spec.command, payload: spec.codec.encode(message.body) };
    }
  }
}
