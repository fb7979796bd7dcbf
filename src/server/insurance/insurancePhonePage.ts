import { createHash } from 'node:crypto';

/**
 * The patient's phone page (GET /pay?code=...): one self-contained HTML document, no external script or style.
 * It opens the link (the first phone holds it), asks for the e-credential, shows what is paid, what the insurance
 * covers and what is left for the patient, and sends consent or refusal. Chinese first, English beside it.
 * Served under a Content-Security-Policy that allows only this page's own script (by its hash) and its origin.
 */
const SCRIPT = `const code = new URLSearchParams(location.search).get('code') || '';
const yuan = (fen) => '¥' + Math.floor(fen / 100) + '.' + String(fen % 100).padStart(2, '0');
const $ = (id) => document.getElementById(id);
async function call(action, body) {
  $('error').textContent = '';
  const res = await fetch('/api/insurance/phone/' + action, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, ...body }) });
  const answer = await res.json();
  if (answer.status !== 'ok') {
    $('error').textContent = (answer.error.zh || '') + ' / ' + answer.error.message + ' (' + (answer.error.number || answer.error.code) + ')';
    $('error').dataset.code = answer.error.code;
    throw new Error(answer.error.code);
  }
  return answer.data;
}
function show(view) {
  $('binding').textContent = view.bindingCode;
  $('item').textContent = view.item;
  $('amount').textContent = yuan(view.amountFen);
  $('order').hidden = false;
  $('status').dataset.state = view.state;
  if (view.insurerFen !== undefined) {
    $('insurer').textContent = yuan(view.insurerFen);
    $('patient').textContent = yuan(view.patientFen);
    if (view.maskedName) $('insured').textContent = view.maskedName;
  }
  $('credentialForm').hidden = view.state !== 'opened' || view.insurerFen !== undefined;
  $('quote').hidden = !(view.state === 'opened' && view.insurerFen !== undefined);
  const done = { settled: '支付成功，请回到终端 / Paid: go back to the terminal', used: '已使用 / Used', refused: '已拒绝，未扣费 / Refused: nothing charged', failed: '支付失败，未扣费 / Failed: nothing charged', expired: '已过期 / Expired', settling: '正在结算… / Settling…' };
  $('status').textContent = done[view.state] || '';
}
$('credentialForm').addEventListener('submit', (e) => { e.preventDefault(); call('quote', { credential: $('credential').value }).then(show, () => {}); });
$('consent').addEventListener('click', () => call('consent', {}).then(show, () => {}));
$('refuse').addEventListener('click', () => call('refuse', {}).then(show, () => {}));
call('open', {}).then(show, () => {});
`;

export const PHONE_PAGE = `<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>医保支付 Insurance payment</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;padding:16px;max-width:28rem}
h1{font-size:1.3rem}.row{display:flex;justify-content:space-between;margin:6px 0}
button{font-size:1.1rem;padding:10px 16px;margin:8px 8px 0 0}#error{color:#b00020}
.binding{font-size:1.4rem;font-weight:bold;letter-spacing:1px}
</style></head><body>
<h1>医保电子凭证支付 <small>Pay with insurance e-credential</small></h1>
<p>请核对终端屏幕上显示的订单号和金额 / Check the order and amount shown on the terminal:</p>
<p class="binding" id="binding">…</p>
<div id="order" hidden>
 <div class="row"><span>项目 Exam</span><span id="item"></span></div>
 <div class="row"><span>金额 Amount</span><span id="amount"></span></div>
</div>
<form id="credentialForm" hidden>
 <label>医保电子凭证 E-credential <input id="credential" autocomplete="off" required maxlength="128"></label>
 <button type="submit" id="query">查询 Check coverage</button>
</form>
<div id="quote" hidden>
 <div class="row"><span>参保人 Insured</span><span id="insured"></span></div>
 <div class="row"><span>医保支付 Insurance pays</span><span id="insurer"></span></div>
 <div class="row"><span>个人自付 You pay</span><span id="patient"></span></div>
 <button id="consent">同意支付 Consent</button><button id="refuse">拒绝 Refuse</button>
</div>
<p id="status" role="status"></p><p id="error" role="alert"></p>
<script>${SCRIPT}</script></body></html>
`;

export const PHONE_PAGE_CSP = `default-src 'none'; script-src 'sha256-${createHash('sha256').update(SCRIPT, 'utf8').digest('base64')}'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`;
