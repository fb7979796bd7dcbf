/**
 * Checking (and, for the mother card's statement, building) the proof of a
 * `clock.reset` ledger entry (codecs/clockReset.ts) with the investor root's
 * public key alone. The terminal checks it before it writes the entry, the
 * ledger verifier again when it reads it.
 */
import { fromHex, utf8 } from '../codecs/bytes.js';
import { ClockResetError, parseMotherClockResetBody, type ClockResetProof } from '../codecs/clockReset.js';
import { verifyCheckpoint } from './checkpoint.js';
import { verifyMessage } from './ed25519.js';

export interface ClockResetContext {
  readonly rootPublicKey: Uint8Array;
  readonly terminalId: string;
  /** The seq and hex entry hash of the entry the reset follows */
  readonly headSeq: number;
  readonly headHash: string;
  /** The seq of the last clock.refused entry since the last reset (a server proof must cover it) */
  readonly refusedSeq: number | undefined;
  /** Hex entry hash of an entry of this ledger at seq (from refusedSeq on), or undefined */
  readonly hashAt: (seq: number) => string | undefined;
}

export interface ClockResetVerdict {
  readonly by: 'server' | 'mother-card';
  /** The time the mark goes to (ms) */
  readonly time: number;
  /** Who vouched: the server id, or the mother card's id */
  readonly signer: string;
}

/** The proof's verdict, or ClockResetError (CLOCK_RESET_REFUSED) naming what does not hold */
export function verifyClockReset(proof: ClockResetProof, ctx: ClockResetContext): ClockResetVerdict {
  if (proof.by === 'server') {
    let fields;
    try {
      fields = verifyCheckpoint(proof.checkpoint, ctx.rootPublicKey);
    } catch (err) {
      throw new ClockResetError(`server checkpoint: ${(err as Error).message}`, 'checkpoint');
    }
    if (fields.terminalId !== ctx.terminalId) throw new ClockResetError(`checkpoint for terminal ${fields.terminalId}`, 'checkpoint.terminalId');
    if (ctx.refusedSeq === undefined) throw new ClockResetError('a server reset follows a clock.refused entry: none since the last reset');
    if (fields.seq < ctx.refusedSeq || fields.seq > ctx.headSeq) {
      throw new ClockResetError(`checkpoint at seq ${fields.seq}: a server reset needs one signed for seq ${ctx.refusedSeq}..${ctx.headSeq} (after the clock.refused entry)`, 'checkpoint.seq');
    }
    if (ctx.hashAt(fields.seq) !== fields.headHash) throw new ClockResetError(`checkpoint hash at seq ${fields.seq} is not this ledger's`, 'checkpoint.headHash');
    return { by: 'server', time: fields.time, signer: fields.serverId };
  }
  const fields = parseMotherClockResetBody(proof.body);
  if (!verifyMessage(ctx.rootPublicKey, utf8(proof.body), fromHex(proof.signature))) throw new ClockResetError('statement not signed by this investor root (mother card)', 'signature');
  if (fields.terminalId !== ctx.terminalId) throw new ClockResetError(`statement for terminal ${fields.terminalId}`, 'body.terminalId');
  if (fields.headSeq !== ctx.headSeq || fields.headHash !== ctx.headHash) {
    throw new ClockResetError(`statement names seq ${fields.headSeq}, the entry before the reset is seq ${ctx.headSeq} (used once, for this ledger only)`, 'body.headSeq');
  }
  return { by: 'mother-card', time: fields.time, signer: fields.motherCardId };
}
