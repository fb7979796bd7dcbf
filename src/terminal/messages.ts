/** Operator messages for successful outcomes; refusals use errors.ts. */
import type { Locale } from '../errors.js';

export const okMessages = {
  useGranted: (serial: number, batchNo: number, remaining: number) => ({
    en: `Use granted: card ${serial} of batch ${batchNo}. ${remaining} left. Remove card.`,
    zh: `扣费成功：批次 ${batchNo} 第 ${serial} 号卡，剩余 ${remaining} 次。请取卡。`,
  }),
  batchLoaded: (batchNo: number, count: number) => ({
    en: `Batch ${batchNo} loaded: ${count} one-time cards accepted.`,
    zh: `批次 ${batchNo} 已装载：可使用 ${count} 张一次卡。`,
  }),
  provisioned: (terminalId: string, clinicCode: string) => ({
    en: `Terminal ${terminalId} provisioned for clinic ${clinicCode}.`,
    zh: `终端 ${terminalId} 已为医疗机构 ${clinicCode} 完成出厂初始化。`,
  }),
  voucherAccepted: (serial: number, examType: string, trustListGrace: boolean) => ({
    en: `Voucher accepted: ${examType}, voucher ${serial} written off.${trustListGrace ? ' Trust list out of date: connect the terminal.' : ''}`,
    zh: `服务券已核销：${examType}，券号 ${serial}。${trustListGrace ? '信任列表已过期，请连接网络。' : ''}`,
  }),
  insurancePaid: (item: string, insurerFen: number, patientFen: number) => ({
    en: `Insurance paid: ${item}, insurance ${yuan(insurerFen)}, patient ${yuan(patientFen)}. Device enabled.`,
    zh: `医保支付成功：${item}，医保支付 ${yuan(insurerFen)}，个人支付 ${yuan(patientFen)}。设备已启用。`,
  }),
  insuranceScan: (userCode: string, bindingCode: string) => ({
    en: `Scan to pay with insurance. Code ${userCode}, order ${bindingCode}`,
    zh: `请扫码医保支付。授权码 ${userCode}，订单 ${bindingCode}`,
  }),
  ready: () => ({ en: 'Ready: insert card', zh: '就绪：请插卡' }),
  usesLeft: (n: number) => ({ en: `${n} ${n === 1 ? 'use' : 'uses'} left in this batch`, zh: `本批次剩余 ${n} 次` }),
  noBatch: () => ({ en: 'No batch loaded: insert a batch card', zh: '未装载批次：请插入批次卡' }),
} as const;

function yuan(fen: number): string {
  return `¥${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`;
}

export function pick(message: { en: string; zh: string }, locale: Locale): string {
  return locale === 'zh' ? message.zh : message.en;
}
