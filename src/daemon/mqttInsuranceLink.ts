/**
 * The terminal's insurance requests over its MQTT link (the `insurance` / `insurance-result` topics). Chosen over
 * the server's HTTP routes because this link is already the terminal's authenticated one: the broker knows the
 * terminal by its TLS certificate and the ACL confines it to its own topics, so the server takes the terminal id
 * from the topic and a terminal can start, poll and settle orders for itself only; the terminal has no other way
 * to the server (a GPRS link, one connection), and the voucher can be pushed down the same link the moment it
 * exists. A refusal the server answers becomes its TallyError; no answer is undefined (offline).
 */
import { ErrorCodes, TallyError, type ErrorName } from '../errors.js';
import type { SyncClient } from '../sync/SyncClient.js';
import type { InsuranceLink } from '../terminal/InsurancePayment.js';

const known = (name: string | undefined): ErrorName => (name !== undefined && name in ErrorCodes ? (name as ErrorName) : 'INSURANCE_FAILED');

export function mqttInsuranceLink(client: SyncClient, timeoutMs = 5000): InsuranceLink {
  const ask = async (request: Parameters<SyncClient['insurance']>[0]) => {
    const answer = await client.insurance(request, timeoutMs);
    if (!answer) return undefined;
    if (answer.status === 'error' || !answer.data) throw new TallyError(known(answer.error?.code), answer.error?.message ?? 'the server refused');
    return answer.data;
  };
  return {
    online: () => client.connected(),
    async start(request) {
      const d = await ask({ op: 'start', ...request });
      if (!d) return undefined;
      if (!d.orderId || !d.deviceCode || !d.userCode || !d.verificationUri || !d.verificationUriComplete || !d.bindingCode || !d.expiresIn || !d.interval) throw new TallyError('INSURANCE_FAILED', 'the server answered an incomplete authorisation');
      return { orderId: d.orderId, deviceCode: d.deviceCode, userCode: d.userCode, verificationUri: d.verificationUri, verificationUriComplete: d.verificationUriComplete, bindingCode: d.bindingCode, expiresIn: d.expiresIn, interval: d.interval };
    },
    async poll(deviceCode) {
      const d = await ask({ op: 'poll', deviceCode });
      if (!d) return undefined;
      if (d.voucher && d.orderId) return { orderId: d.orderId, voucher: d.voucher };
      const interval = d.interval ?? 5;
      if (d.pending === 'access_denied') return { pending: 'access_denied', interval, reason: known(d.reason) };
      if (d.pending) return { pending: d.pending, interval };
      throw new TallyError('INSURANCE_FAILED', 'the server answered a poll with neither a voucher nor a state');
    },
    async redeem(redeemCode) {
      const d = await ask({ op: 'redeem', redeemCode });
      if (!d) return undefined;
      if (!d.orderId || !d.voucher) throw new TallyError('INSURANCE_FAILED', 'the server answered a redemption without its voucher');
      return { orderId: d.orderId, voucher: d.voucher };
    },
    async outcome(orderId, ran) {
      try {
        return (await ask({ op: 'outcome', orderId, ran })) !== undefined;
      } catch {
        // refused (an order the server no longer holds as settled): nothing left to tell it
        return true;
      }
    },
    onVoucher: (listener) => client.onInsuranceVoucher(listener),
  };
}
