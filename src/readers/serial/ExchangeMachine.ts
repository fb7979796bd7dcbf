/**
 * One request, its ACK and its response, as a pure state machine: inputs in,
 * actions out, no I/O and no timers (the link runs the timers it asks for).
 *
 *   idle --start--> awaiting-ack --ACK--> awaiting-response --response--> done
 *                     |  ^ ACK timeout / NAK bad-crc|busy: resend while attempts remain
 *                     +--+
 *   A response while awaiting the ACK counts as both (the ACK was lost).
 *   Response timeouts are not retried: the device may have executed the request.
 */
import { NakReason, NAK_REASON_NAMES } from '../../codecs/firmware/commands.js';

export interface ExchangeTiming {
  readonly ackTimeoutMs: number;
  readonly responseTimeoutMs: number;
  /** Sends in all, the first included */
  readonly maxAttempts: number;
}

export type ExchangeFailure =
  | { readonly type: 'ack-timeout'; readonly attempts: number }
  | { readonly type: 'nak'; readonly reason: number; readonly reasonName: string; readonly attempts: number }
  | { readonly type: 'response-timeout'; readonly attempts: number }
  | { readonly type: 'closed'; readonly attempts: number };

export type ExchangeInput =
  | { readonly type: 'start' }
  | { readonly type: 'ack' }
  | { readonly type: 'nak'; readonly reason: number }
  | { readonly type: 'response' }
  | { readonly type: 'timeout' }
  | { readonly type: 'closed' };

export type ExchangeAction =
  | { readonly type: 'send'; readonly attempt: number }
  | { readonly type: 'start-timer'; readonly ms: number }
  | { readonly type: 'stop-timer' }
  | { readonly type: 'succeed' }
  | { readonly type: 'fail'; readonly failure: ExchangeFailure };

export type ExchangePhase = 'idle' | 'awaiting-ack' | 'awaiting-response' | 'done' | 'failed';

export interface ExchangeState {
  readonly phase: ExchangePhase;
  readonly attempts: number;
}

export const INITIAL_EXCHANGE: ExchangeState = { phase: 'idle', attempts: 0 };

const RETRYABLE_NAKS = new Set<number>([NakReason.BAD_CRC, NakReason.BUSY]);

export function stepExchange(state: ExchangeState, input: ExchangeInput, timing: ExchangeTiming): { state: ExchangeState; actions: ExchangeAction[] } {
  const { phase, attempts } = state;
  const stay = { state, actions: [] as ExchangeAction[] };
  if (phase === 'done' || phase === 'failed') return stay;
  const fail = (failure: ExchangeFailure) => ({ state: { phase: 'failed' as const, attempts }, actions: [{ type: 'stop-timer' } as const, { type: 'fail', failure } as const] });
  const resend = () => ({
    state: { phase: 'awaiting-ack' as const, attempts: attempts + 1 },
    actions: [{ type: 'send', attempt: attempts + 1 } as const, { type: 'start-timer', ms: timing.ackTimeoutMs } as const],
  });
  if (input.type === 'closed') return fail({ type: 'closed', attempts });
  switch (phase) {
    case 'idle':
      return input.type === 'start' ? resend() : stay;
    case 'awaiting-ack':
      switch (input.type) {
        case 'ack':
          return { state: { phase: 'awaiting-response', attempts }, actions: [{ type: 'start-timer', ms: timing.responseTimeoutMs }] };
        case 'response':
          return { state: { phase: 'done', attempts }, actions: [{ type: 'stop-timer' }, { type: 'succeed' }] };
        case 'timeout':
          return attempts < timing.maxAttempts ? resend() : fail({ type: 'ack-timeout', attempts });
        case 'nak':
          if (RETRYABLE_NAKS.has(input.reason) && attempts < timing.maxAttempts) return resend();
          return fail({ type: 'nak', reason: input.reason, reasonName: NAK_REASON_NAMES[input.reason] ?? `reason ${input.reason}`, attempts });
        default:
          return stay;
      }
    case 'awaiting-response':
      switch (input.type) {
        case 'response':
          return { state: { phase: 'done', attempts }, actions: [{ type: 'stop-timer' }, { type: 'succeed' }] };
        case 'timeout':
          return fail({ type: 'response-timeout', attempts });
        default:
          // a second ACK (our resend crossed the first ACK) or a late NAK changes nothing
          return stay;
      }
  }
}
