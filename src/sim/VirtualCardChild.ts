/**
 * The child process of VirtualCardProcess: one VirtualCard slot, driven over
 * Node's IPC channel (insert a card's state, remove, close). It exits when the
 * parent goes away.
 */
import { ErrorCodes, TallyError } from '../errors.js';
import { SimulatedCard } from './SimulatedCard.js';
import { VirtualCard } from './VirtualCard.js';
import { CHILD_READY, type VirtualCardProcessOptions, type VirtualCardReply, type VirtualCardRequest } from './VirtualCardProcess.js';

function send(reply: VirtualCardReply | typeof CHILD_READY): void {
  process.send?.(reply);
}

/** The detail alone: the parent's TallyError puts the code's words back in front */
function detailOf(err: unknown): { code: string; message: string } {
  if (!(err instanceof TallyError)) return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
  const prefix = `${ErrorCodes[err.code].en}: `;
  return { code: err.code, message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message };
}

const options = JSON.parse(process.argv[2] ?? '{}') as VirtualCardProcessOptions;
const slot = new VirtualCard({ endpoint: options.endpoint, ...(options.answerDelayMs ? { answerDelayMs: options.answerDelayMs } : {}), ...(options.cardTiming ? { cardTiming: options.cardTiming } : {}) });
/** The card last put in, kept after a pull so that remove can hand its state back */
let last: SimulatedCard | undefined;

async function handle(request: VirtualCardRequest): Promise<VirtualCardReply> {
  switch (request.op) {
    case 'insert': {
      last = SimulatedCard.fromState(request.state);
      await slot.insert(last, { timeoutMs: request.timeoutMs });
      // as in-process: armed once vpcd has polled the card, before pcscd reports it
      if (request.pullAtFirstApdu) slot.removeDuringNextApdu();
      return { id: request.id, ok: true, stats: slot.stats };
    }
    case 'remove': {
      await slot.remove();
      const state = last?.snapshot();
      last = undefined;
      return { id: request.id, ok: true, stats: slot.stats, ...(state ? { state } : {}) };
    }
    case 'close':
      await slot.close();
      setImmediate(() => process.disconnect());
      return { id: request.id, ok: true, stats: slot.stats };
  }
}

process.on('message', (request: VirtualCardRequest) => {
  handle(request).then(send, (err: unknown) => send({ id: request.id, ok: false, ...detailOf(err) }));
});
process.on('disconnect', () => {
  void slot.close().finally(() => process.exit(0));
});
send(CHILD_READY);
