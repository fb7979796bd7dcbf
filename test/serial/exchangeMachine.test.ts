import { describe, expect, it } from 'vitest';
import { NakReason } from '../../src/codecs/firmware/commands.js';
import { INITIAL_EXCHANGE, stepExchange, type ExchangeAction, type ExchangeInput, type ExchangeState } from '../../src/readers/serial/ExchangeMachine.js';

const timing = { ackTimeoutMs: 100, responseTimeoutMs: 1000, maxAttempts: 3 };

function run(inputs: ExchangeInput[]): { state: ExchangeState; actions: ExchangeAction[] } {
  let state = INITIAL_EXCHANGE;
  const actions: ExchangeAction[] = [];
  for (const input of inputs) {
    const step = stepExchange(state, input, timing);
    state = step.state;
    actions.push(...step.actions);
  }
  return { state, actions };
}

const sends = (actions: ExchangeAction[]): number => actions.filter((a) => a.type === 'send').length;
const failure = (actions: ExchangeAction[]) => actions.find((a) => a.type === 'fail');

describe('request/ACK/response machine', () => {
  it('start, ACK, response: one send, two timers, success', () => {
    const { state, actions } = run([{ type: 'start' }, { type: 'ack' }, { type: 'response' }]);
    expect(state.phase).toBe('done');
    expect(actions).toEqual([
      { type: 'send', attempt: 1 },
      { type: 'start-timer', ms: 100 },
      { type: 'start-timer', ms: 1000 },
      { type: 'stop-timer' },
      { type: 'succeed' },
    ]);
  });

  it('a response without an ACK (the ACK was lost) succeeds', () => {
    const { state, actions } = run([{ type: 'start' }, { type: 'response' }]);
    expect(state.phase).toBe('done');
    expect(actions.at(-1)).toEqual({ type: 'succeed' });
  });

  it('resends on ACK timeout until maxAttempts, then fails with ack-timeout', () => {
    const { state, actions } = run([{ type: 'start' }, { type: 'timeout' }, { type: 'timeout' }, { type: 'timeout' }]);
    expect(state.phase).toBe('failed');
    expect(sends(actions)).toBe(3);
    expect(failure(actions)).toEqual({ type: 'fail', failure: { type: 'ack-timeout', attempts: 3 } });
  });

  it('one lost ACK costs one resend', () => {
    const { state, actions } = run([{ type: 'start' }, { type: 'timeout' }, { type: 'ack' }, { type: 'response' }]);
    expect(state).toEqual({ phase: 'done', attempts: 2 });
    expect(sends(actions)).toBe(2);
  });

  it('resends at once on NAK bad-crc and busy; fails at once on unknown-command and bad-payload', () => {
    const retried = run([{ type: 'start' }, { type: 'nak', reason: NakReason.BAD_CRC }, { type: 'nak', reason: NakReason.BUSY }, { type: 'ack' }, { type: 'response' }]);
    expect(retried.state).toEqual({ phase: 'done', attempts: 3 });
    for (const reason of [NakReason.UNKNOWN_COMMAND, NakReason.BAD_PAYLOAD]) {
      const { state, actions } = run([{ type: 'start' }, { type: 'nak', reason }]);
      expect(state.phase).toBe('failed');
      expect(sends(actions)).toBe(1);
      expect(failure(actions)).toMatchObject({ failure: { type: 'nak', reason } });
    }
  });

  it('NAKs beyond maxAttempts fail with the NAK', () => {
    const { actions } = run([{ type: 'start' }, ...Array.from({ length: 3 }, () => ({ type: 'nak', reason: NakReason.BAD_CRC }) as const)]);
    expect(failure(actions)).toMatchObject({ failure: { type: 'nak', reasonName: 'bad-crc', attempts: 3 } });
  });

  it('does not resend after the ACK: a response timeout fails (the request may have run)', () => {
    const { state, actions } = run([{ type: 'start' }, { type: 'ack' }, { type: 'timeout' }]);
    expect(state.phase).toBe('failed');
    expect(sends(actions)).toBe(1);
    expect(failure(actions)).toEqual({ type: 'fail', failure: { type: 'response-timeout', attempts: 1 } });
  });

  it('ignores a duplicate ACK and a late NAK while awaiting the response', () => {
    const { state } = run([{ type: 'start' }, { type: 'ack' }, { type: 'ack' }, { type: 'nak', reason: 1 }]);
    expect(state.phase).toBe('awaiting-response');
  });

  it('fails with closed from any live phase, and stays put once finished', () => {
    expect(failure(run([{ type: 'start' }, { type: 'closed' }]).actions)).toMatchObject({ failure: { type: 'closed' } });
    expect(failure(run([{ type: 'start' }, { type: 'ack' }, { type: 'closed' }]).actions)).toMatchObject({ failure: { type: 'closed' } });
    const done = run([{ type: 'start' }, { type: 'response' }, { type: 'closed' }, { type: 'timeout' }]);
    expect(done.state.phase).toBe('done');
    expect(failure(done.actions)).toBeUndefined();
  });
});
