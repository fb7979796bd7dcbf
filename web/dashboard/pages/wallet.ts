/**
 * The patient's voucher wallet (seed 004's personal terminal), made for a phone: the vouchers the community centre
 * issued to this wallet, each with its state, validity and slot; the QR code to show at the terminal while the
 * voucher can be used (an image of the server's SVG, never markup in the page); booking a slot for a voucher that
 * needs one. A written-off voucher has left the wallet. The wallet is the session's: the server decides whose.
 */
import { api, el, localWords, registerPage, session, showPage, type Row } from '../core.js';

const w = localWords({
  en: {
    wallet: 'My vouchers',
    none: 'No vouchers in this wallet.',
    exam: 'Exam',
    validUntil: 'Valid until',
    slot: 'Appointment',
    book: 'Book',
    chooseSlot: 'Choose a time',
    noSlots: 'No free time slots now.',
    show: 'Show this code at the terminal',
    personal: 'My personal code',
    personalHint: 'Show it at the community centre to receive a voucher. Valid until',
    'to-book': 'to book',
    ready: 'ready to use',
    booked: 'booked',
    expired: 'expired',
    voided: 'voided',
    insurance: 'Pay a service order with my medical-insurance e-credential',
    clinic: 'Clinic code',
    item: 'Exam item',
    amount: 'Amount (yuan)',
    credential: 'E-credential',
    pay: 'Pay',
    paid: 'Paid. Give this code to the terminal operator:',
    covered: 'Insurance pays',
    left: 'You pay',
    notPaid: 'Not paid; nothing was charged.',
  },
  zh: {
    wallet: '我的服务券',
    none: '钱包中没有服务券。',
    exam: '检查项目',
    validUntil: '有效期至',
    slot: '预约',
    book: '预约',
    chooseSlot: '选择时间',
    noSlots: '目前没有可预约的时段。',
    show: '请在终端出示此二维码',
    personal: '我的个人二维码',
    personalHint: '在社区中心出示以领取服务券。有效至',
    'to-book': '待预约',
    ready: '可使用',
    booked: '已预约',
    expired: '已过期',
    voided: '已作废',
    insurance: '用医保电子凭证支付服务订单',
    clinic: '机构编码',
    item: '检查项目',
    amount: '金额（元）',
    credential: '医保电子凭证',
    pay: '支付',
    paid: '已支付。请将此码告知终端操作员：',
    covered: '医保支付',
    left: '个人支付',
    notPaid: '未支付，未扣任何费用。',
  },
});

const day = (seconds: unknown): string => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString().slice(0, 10) : '');
const time = (seconds: unknown): string => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 16) : '');

/** The QR code as an image of the server's SVG (a data: URL the CSP allows for images; an image runs no script) */
export function qrImage(svg: string, attrs: Record<string, string>): HTMLImageElement {
  return el('img', { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt: 'QR', ...attrs });
}

function slotText(s: Row): string {
  return `${time(s.start)} ${String(s.department ?? '')} ${String(s.doctor ?? '')} (${String(s.clinicCode ?? '')})`;
}

const yuan = (fen: unknown): string => (typeof fen === 'number' ? `¥${(fen / 100).toFixed(2)}` : '');

/** What the server answered for a service order: the code to redeem at the terminal, or why it was not paid */
function orderOutcome(order: Row): HTMLElement {
  const words = w();
  if (order.state === 'failed') {
    const message = String((session?.locale === 'zh' ? order.failureZh : order.failureMessage) ?? '');
    return el('div', { 'data-state': 'failed' }, el('p', { class: 'error', id: 'insurance-failure', 'data-code': String(order.failure ?? '') }, `${String(order.failure ?? '')} ${message}`), el('p', {}, words.notPaid));
  }
  return el(
    'div',
    { 'data-state': String(order.state), 'data-order': String(order.orderId) },
    el('p', {}, words.paid),
    el('p', { class: 'redeem-code', id: 'insurance-redeem-code' }, String(order.redeemCode ?? '')),
    el('p', {}, `${words.covered} ${yuan(order.insurerFen)} · ${words.left} ${yuan(order.patientFen)}`),
  );
}

/** Seed 001's booking app: pay a service order with the e-credential; the server settles it with the insurer */
function insuranceForm(): HTMLElement {
  const words = w();
  const input = (name: string, attrs: Record<string, string> = {}) => el('input', { id: `insurance-${name}`, name, ...attrs });
  const fields = { clinicCode: input('clinicCode'), item: input('item', { value: 'OCT' }), amount: input('amount', { type: 'number', step: '0.01', min: '0.01' }), credential: input('credential', { autocomplete: 'off' }) };
  const result = el('div', { class: 'result', id: 'insurance-result' });
  const pay = el('button', { type: 'submit' }, words.pay);
  const form = el(
    'form',
    { class: 'wallet-card', id: 'insurance' },
    el('h2', {}, words.insurance),
    el('label', {}, words.clinic, ' ', fields.clinicCode),
    el('label', {}, words.item, ' ', fields.item),
    el('label', {}, words.amount, ' ', fields.amount),
    el('label', {}, words.credential, ' ', fields.credential),
    pay,
    result,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    pay.disabled = true;
    result.replaceChildren();
    const body = { clinicCode: fields.clinicCode.value.trim(), item: fields.item.value.trim(), amountFen: Math.round(Number(fields.amount.value) * 100), credential: fields.credential.value };
    void api<Row>('/api/wallet/insurance-orders', body)
      .then(
        (order) => result.replaceChildren(orderOutcome(order)),
        (err: Error & { code?: string }) => result.replaceChildren(el('p', { class: 'error', 'data-code': err.code ?? '' }, `${err.code ?? ''} ${err.message}`)),
      )
      .finally(() => (pay.disabled = false));
  });
  return form;
}

async function wallet(main: HTMLElement): Promise<void> {
  const words = w();
  const data = await api<{ walletId: string; vouchers: Row[]; slots: Row[]; personalQrSvg?: string; personalQrValidUntil?: number }>('/api/wallet');
  main.append(el('h1', {}, words.wallet), el('p', { id: 'wallet-id', class: 'muted' }, data.walletId));
  // the person's own code (wallet-qr.md): short-lived and signed; reloading the page gets a fresh one
  if (data.personalQrSvg) {
    main.append(
      el('section', { class: 'wallet-card', id: 'personal' }, el('h2', {}, words.personal), el('p', {}, `${words.personalHint} ${time(data.personalQrValidUntil).slice(11)} UTC`), qrImage(data.personalQrSvg, { class: 'voucher-qr', id: 'personal-qr' })),
    );
  }
  if (data.vouchers.length === 0) main.append(el('p', { id: 'wallet-empty' }, words.none));
  for (const v of data.vouchers) {
    const shown = String(v.shown) as 'to-book' | 'ready' | 'booked' | 'expired' | 'voided';
    const card = el(
      'section',
      { class: 'wallet-card', 'data-serial': String(v.serial), 'data-state': shown },
      el('h2', {}, `${words.exam}: ${String(v.examType)}`, el('span', { class: `badge ${shown}` }, words[shown] ?? shown)),
      el('p', {}, `No. ${String(v.serial)} · ${words.validUntil} ${day(v.validUntil)}`),
    );
    const slot = v.slot as Row | undefined;
    if (slot && shown === 'booked') card.append(el('p', { class: 'slot' }, `${words.slot}: ${slotText(slot)}`));
    // a voucher that needs booking is shown once booked (the terminal refuses it before)
    if (typeof v.qrSvg === 'string' && (shown === 'ready' || shown === 'booked')) card.append(el('p', {}, words.show), qrImage(v.qrSvg, { class: 'voucher-qr', 'data-serial': String(v.serial) }));
    if (shown === 'to-book') {
      const slots = data.slots.filter((s) => s.clinicCode === v.scope);
      if (slots.length === 0) card.append(el('p', {}, words.noSlots));
      else {
        const select = el('select', { class: 'slot-choice', 'aria-label': words.chooseSlot }, ...slots.map((s) => el('option', { value: String(s.slotId) }, slotText(s))));
        const book = el('button', { class: 'book' }, words.book);
        const error = el('p', { class: 'error' });
        book.addEventListener('click', () => {
          book.disabled = true;
          void api('/api/wallet/book', { serial: v.serial, slotId: Number(select.value) }).then(
            () => showPage('wallet'),
            (err: Error) => {
              error.textContent = err.message;
              book.disabled = false;
            },
          );
        });
        card.append(el('div', { class: 'controls' }, select, book), error);
      }
    }
    main.append(card);
  }
  main.append(insuranceForm());
}

registerPage({ key: 'wallet', label: () => w().wallet, render: wallet, roles: ['patient'], home: ['patient'] });
