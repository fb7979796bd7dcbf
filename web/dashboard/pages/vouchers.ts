/**
 * The voucher back office (seed 004) and the community centre's desk: generate a batch, send vouchers to a centre,
 * issue one to a person's wallet (its QR code shown), add booking slots, void one or every expired one; the stock
 * (the newest vouchers with their state, holder and where they were used), the batches, the slots and the
 * statistics the seed lists (generated, sent, voided, written off; and exams completed) per month. Each part is
 * drawn for the roles the server lets read or write it (a clinic: its statistics and its slots).
 */
import { api, el, localWords, registerPage, session, table, type Row } from '../core.js';
import { qrImage } from './wallet.js';

const w = localWords({
  en: {
    vouchers: 'Vouchers',
    generate: 'Generate a batch',
    send: 'Send to a community centre',
    issue: "Issue to a person's wallet",
    slot: 'Add a booking slot',
    void: 'Void a voucher',
    voidExpired: 'Void every expired voucher',
    stock: 'Vouchers (newest first)',
    batches: 'Batches',
    slots: 'Booking slots',
    stats: 'Statistics per month',
    batchId: 'Batch',
    examType: 'Exam type',
    scope: 'Clinic',
    count: 'Count',
    validDays: 'Valid (days)',
    bookingRequired: 'Booking required',
    centreId: 'Centre',
    community: 'Community',
    serial: 'Serial',
    walletId: 'Wallet',
    personalQr: "or the person's QR code",
    slotId: 'Slot',
    clinicCode: 'Clinic',
    department: 'Department',
    doctor: 'Doctor',
    start: 'Start (UTC)',
    minutes: 'Minutes',
    capacity: 'Capacity',
    reason: 'Reason',
    state: 'State',
    terminal: 'Terminal',
    completed: 'Exam completed',
    releases: 'Released',
    booked: 'Booked',
    period: 'Month',
    key: 'Community / clinic',
    generated: 'Generated',
    sent: 'Sent',
    voided: 'Voided',
    writtenOff: 'Written off',
    done: 'Done',
    validUntil: 'Valid until',
  },
  zh: {
    vouchers: '服务券',
    generate: '生成一批服务券',
    send: '发送至社区',
    issue: '发放至个人钱包',
    slot: '添加预约时段',
    void: '作废服务券',
    voidExpired: '作废所有过期服务券',
    stock: '服务券（最新在前）',
    batches: '批次',
    slots: '预约时段',
    stats: '按月统计',
    batchId: '批次',
    examType: '检查项目',
    scope: '机构',
    count: '数量',
    validDays: '有效天数',
    bookingRequired: '须预约',
    centreId: '社区中心',
    community: '社区',
    serial: '编号',
    walletId: '钱包',
    personalQr: '或个人二维码',
    slotId: '时段',
    clinicCode: '机构',
    department: '科室',
    doctor: '医生',
    start: '开始（UTC）',
    minutes: '分钟',
    capacity: '容量',
    reason: '原因',
    state: '状态',
    terminal: '终端',
    completed: '检查完成',
    releases: '已释放',
    booked: '已预约',
    period: '月份',
    key: '社区 / 机构',
    generated: '生成',
    sent: '发送',
    voided: '作废',
    writtenOff: '核销',
    done: '完成',
    validUntil: '有效期至',
  },
});
type Word = keyof ReturnType<typeof w>;

interface Field {
  name: Word;
  type?: 'text' | 'number' | 'checkbox' | 'datetime-local';
  value?: string;
}

/** A form of labelled inputs; the answer (or the refusal, with its code) goes under it */
function form(id: string, title: Word, fields: Field[], submit: (values: Record<string, string | number | boolean>) => Promise<Node | string>): HTMLElement {
  const words = w();
  const inputs = fields.map((f) => {
    const input = el('input', { name: f.name, id: `${id}-${f.name}`, type: f.type ?? 'text', ...(f.value !== undefined ? (f.type === 'checkbox' ? (f.value === 'true' ? { checked: '' } : {}) : { value: f.value }) : {}) });
    return { f, input };
  });
  const result = el('div', { class: 'result', id: `${id}-result` });
  const node = el(
    'form',
    { class: 'voucher-form', id },
    el('h2', {}, words[title]),
    ...inputs.map(({ f, input }) => el('label', {}, words[f.name], ' ', input)),
    el('button', { type: 'submit' }, words[title]),
    result,
  );
  node.addEventListener('submit', (event) => {
    event.preventDefault();
    const values: Record<string, string | number | boolean> = {};
    for (const { f, input } of inputs) values[f.name] = f.type === 'checkbox' ? input.checked : f.type === 'number' ? Number(input.value) : f.type === 'datetime-local' ? Math.floor(Date.parse(`${input.value}Z`) / 1000) : input.value;
    result.replaceChildren();
    submit(values).then(
      (answer) => result.replaceChildren(answer),
      (err: Error & { code?: string }) => result.replaceChildren(el('p', { class: 'error' }, `${err.code ?? ''} ${err.message}`)),
    );
  });
  return node;
}

const day = (seconds: unknown): string => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString().slice(0, 10) : '');
const time = (seconds: unknown): string => (typeof seconds === 'number' ? new Date(seconds * 1000).toISOString().replace('T', ' ').slice(0, 16) : '');

async function vouchers(main: HTMLElement): Promise<void> {
  const words = w();
  const role = session?.role ?? '';
  const runs = role === 'authority' || role === 'issuer';
  const reads = runs || role === 'auditor';
  const slots = runs || role === 'clinic';
  main.append(el('h1', {}, words.vouchers));
  if (runs) {
    const forms = el(
      'div',
      { class: 'row' },
      form('voucher-generate', 'generate', [{ name: 'batchId' }, { name: 'examType', value: 'OCT' }, { name: 'scope' }, { name: 'count', type: 'number', value: '10' }, { name: 'validDays', type: 'number', value: '30' }, { name: 'bookingRequired', type: 'checkbox', value: 'true' }], async (v) => {
        const made = await api<Row>('/api/vouchers/batches', { batchId: v.batchId, examType: v.examType, scopeKind: 1, scope: v.scope, count: v.count, validDays: v.validDays, bookingRequired: v.bookingRequired });
        return `${words.done}: ${String(made.first)}..${String(made.last)}`;
      }),
      form('voucher-send', 'send', [{ name: 'batchId' }, { name: 'centreId' }, { name: 'community' }, { name: 'count', type: 'number', value: '1' }], async (v) => {
        const sent = await api<Row>('/api/vouchers/send', { batchId: v.batchId, centreId: v.centreId, community: v.community, count: v.count });
        return `${words.sent}: ${String(sent.sent)}`;
      }),
      form('voucher-issue', 'issue', [{ name: 'serial', type: 'number' }, { name: 'centreId' }, { name: 'walletId' }, { name: 'personalQr' }], async (v) => {
        // the wallet named, or read from the person's QR code (the scanner types it into the field)
        const to = v.personalQr ? { personalQr: v.personalQr } : { walletId: v.walletId };
        const issued = await api<Row>('/api/vouchers/issue', { serial: v.serial, centreId: v.centreId, ...to });
        return el('div', { id: 'voucher-issued' }, el('p', {}, `${words.serial} ${String(issued.serial)} → ${String(issued.walletId)}, ${words.validUntil} ${day(issued.validUntil)}`), ...(typeof issued.qrSvg === 'string' ? [qrImage(issued.qrSvg, { class: 'voucher-qr small' })] : []));
      }),
      form('voucher-slot', 'slot', [{ name: 'slotId', type: 'number' }, { name: 'clinicCode' }, { name: 'department' }, { name: 'doctor' }, { name: 'start', type: 'datetime-local' }, { name: 'minutes', type: 'number', value: '30' }, { name: 'capacity', type: 'number', value: '4' }], async (v) => {
        await api('/api/vouchers/slots', { slotId: v.slotId, clinicCode: v.clinicCode, department: v.department, doctor: v.doctor, start: v.start, minutes: v.minutes, capacity: v.capacity });
        return words.done;
      }),
      form('voucher-void', 'void', [{ name: 'serial', type: 'number' }, { name: 'reason' }], async (v) => {
        await api('/api/vouchers/void', { serial: v.serial, reason: v.reason });
        return words.done;
      }),
    );
    const voidExpired = el('button', { id: 'voucher-void-expired' }, words.voidExpired);
    const voidResult = el('span', { id: 'voucher-void-expired-result' });
    voidExpired.addEventListener('click', () => void api<Row>('/api/vouchers/void-expired', {}).then((r) => (voidResult.textContent = `${words.voided}: ${String(r.voided)}`), (err: Error) => (voidResult.textContent = err.message)));
    main.append(forms, el('div', { class: 'controls' }, voidExpired, voidResult));
  } else if (role === 'clinic') {
    main.append(
      form('voucher-slot', 'slot', [{ name: 'slotId', type: 'number' }, { name: 'clinicCode', value: session?.clinics?.[0] ?? '' }, { name: 'department' }, { name: 'doctor' }, { name: 'start', type: 'datetime-local' }, { name: 'minutes', type: 'number', value: '30' }, { name: 'capacity', type: 'number', value: '4' }], async (v) => {
        await api('/api/vouchers/slots', { slotId: v.slotId, clinicCode: v.clinicCode, department: v.department, doctor: v.doctor, start: v.start, minutes: v.minutes, capacity: v.capacity });
        return words.done;
      }),
    );
  }
  const byCommunity = role !== 'clinic';
  const stats = await api<Row[]>(`/api/vouchers/stats?by=${byCommunity ? 'community' : 'clinic'}&period=month`);
  main.append(
    el('h2', {}, words.stats),
    table(
      'voucher-stats',
      (['period', 'key', 'generated', 'sent', 'voided', 'writtenOff', 'completed'] as const).map((k) => ({ key: k, label: words[k], num: k !== 'period' && k !== 'key' })),
      stats,
    ),
  );
  if (role !== 'clinic') {
    const byClinic = await api<Row[]>('/api/vouchers/stats?by=clinic&period=month');
    main.append(table('voucher-stats-clinic', (['period', 'key', 'writtenOff', 'completed'] as const).map((k) => ({ key: k, label: words[k], num: k !== 'period' && k !== 'key' })), byClinic));
  }
  if (reads) {
    const [stock, batches] = await Promise.all([api<Row[]>('/api/vouchers'), api<Row[]>('/api/vouchers/batches')]);
    main.append(
      el('h2', {}, words.batches),
      table(
        'voucher-batches',
        [
          { key: 'batchId', label: words.batchId },
          { key: 'examType', label: words.examType },
          { key: 'scope', label: words.scope },
          { key: 'count', label: words.count, num: true },
          { key: 'validUntil', label: words.validUntil, show: (r) => day(r.validUntil) },
          { key: 'bookingRequired', label: words.bookingRequired, show: (r) => (r.bookingRequired ? '✓' : '') },
        ],
        batches,
      ),
      el('h2', {}, words.stock),
      table(
        'voucher-stock',
        [
          { key: 'serial', label: words.serial, num: true },
          { key: 'batchId', label: words.batchId },
          { key: 'state', label: words.state },
          { key: 'centreId', label: words.centreId },
          { key: 'walletId', label: words.walletId },
          { key: 'slotId', label: words.slotId, num: true },
          { key: 'terminalId', label: words.terminal },
          { key: 'clinicCode', label: words.clinicCode },
          { key: 'completedAt', label: words.completed, show: (r) => time(r.completedAt) },
          { key: 'releases', label: words.releases, num: true },
        ],
        stock,
      ),
    );
  }
  if (slots) {
    const rows = await api<Row[]>('/api/vouchers/slots');
    main.append(
      el('h2', {}, words.slots),
      table(
        'voucher-slots',
        [
          { key: 'slotId', label: words.slotId, num: true },
          { key: 'clinicCode', label: words.clinicCode },
          { key: 'department', label: words.department },
          { key: 'doctor', label: words.doctor },
          { key: 'start', label: words.start, show: (r) => time(r.start) },
          { key: 'capacity', label: words.capacity, num: true },
          { key: 'booked', label: words.booked, num: true },
        ],
        rows,
      ),
    );
  }
}

registerPage({ key: 'vouchers', label: () => w().vouchers, render: vouchers, roles: ['authority', 'issuer', 'clinic', 'auditor'] });
