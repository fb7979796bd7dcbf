/**
 * The InsurancePlatform adapter for the simulated platform's HTTP API (src/sim/insurance). Every call has a
 * deadline; a connection that cannot open is INSURANCE_PLATFORM_DOWN (nothing reached the platform), one that opens
 * and does not answer in time INSURANCE_PLATFORM_TIMEOUT, one that opens and is dropped before the answer (the
 * platform's process died, a proxy cut it) INSURANCE_PLATFORM_NO_ANSWER: in both the platform may have done the
 * work, and the caller looks it up by its idempotency key.
 */
import { TallyError, type ErrorName } from '../../errors.js';
import type { CertificateQuery, InsurancePlatform, PlatformReversal, PlatformSettlement, PlatformStatement, SettlementCertificate, SettlementRequest } from './InsurancePlatform.js';

export interface HttpInsurancePlatformOptions {
  readonly url: string;
  /** Deadline of one call, ms (default 3000) */
  readonly timeoutMs?: number;
}

const PLATFORM_CODES: Record<string, ErrorName> = {
  'not-insured': 'INSURANCE_NOT_INSURED',
  'not-covered': 'INSURANCE_NOT_COVERED',
  'idempotency-mismatch': 'INSURANCE_IDEMPOTENCY',
  'certificate-expired': 'INSURANCE_STATE',
  'unknown-certificate': 'INSURANCE_STATE',
  'already-reversed': 'INSURANCE_STATE',
};

/** Transport faults (undici's cause codes) where no connection was made: the platform cannot have seen the request */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

interface Answer {
  readonly status: number;
  readonly body: { status?: string; data?: unknown; error?: { code?: string; message?: string } };
}

export class HttpInsurancePlatform implements InsurancePlatform {
  readonly name: string;
  private readonly base: string;
  private readonly timeoutMs: number;

  constructor(options: HttpInsurancePlatformOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.name = `sim ${this.base}`;
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string): Promise<Answer> {
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.transportFault(err, path);
    }
    let parsed: Answer['body'];
    try {
      parsed = (await response.json()) as Answer['body'];
    } catch (err) {
      if (isTimeout(err)) throw new TallyError('INSURANCE_PLATFORM_TIMEOUT', `${path}: no answer within ${this.timeoutMs} ms`);
      // the head came, the body was cut off
      if (!(err instanceof SyntaxError)) throw new TallyError('INSURANCE_PLATFORM_NO_ANSWER', `${path}: the answer was cut off (HTTP ${response.status})`);
      throw new TallyError('INSURANCE_PLATFORM_ERROR', `${path}: answer is not JSON (HTTP ${response.status})`);
    }
    return { status: response.status, body: parsed };
  }

  private transportFault(err: unknown, path: string): TallyError {
    if (isTimeout(err)) return new TallyError('INSURANCE_PLATFORM_TIMEOUT', `${path}: no answer within ${this.timeoutMs} ms`);
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    // only a connection that never opened proves the request went nowhere
    return new TallyError(NEVER_CONNECTED.has(cause) ? 'INSURANCE_PLATFORM_DOWN' : 'INSURANCE_PLATFORM_NO_ANSWER', `${path}: ${cause}`);
  }

  private data<T>(answer: Answer, path: string): T {
    if (answer.status < 300 && answer.body.status === 'ok') return answer.body.data as T;
    const code = answer.body.error?.code ?? 'unknown';
    const mapped = PLATFORM_CODES[code] ?? 'INSURANCE_PLATFORM_ERROR';
    throw new TallyError(mapped, `${path}: ${code}: ${answer.body.error?.message ?? `HTTP ${answer.status}`}`, { platformCode: code, httpStatus: answer.status });
  }

  async queryCertificate(query: CertificateQuery): Promise<SettlementCertificate> {
    return this.data(await this.call('POST', '/v1/certificates/query', query), 'certificate query');
  }

  async settle(request: SettlementRequest): Promise<PlatformSettlement> {
    const { idempotencyKey, ...body } = request;
    return this.data(await this.call('POST', '/v1/settlements', body, idempotencyKey), 'settlement');
  }

  async findSettlement(idempotencyKey: string): Promise<PlatformSettlement | undefined> {
    const answer = await this.call('GET', `/v1/settlements/by-key/${encodeURIComponent(idempotencyKey)}`);
    if (answer.status === 404 && answer.body.error?.code === 'unknown-settlement') return undefined;
    return this.data(answer, 'settlement lookup');
  }

  async reverse(idempotencyKey: string, settlementId: string): Promise<PlatformReversal> {
    return this.data(await this.call('POST', `/v1/settlements/${encodeURIComponent(settlementId)}/reversal`, {}, idempotencyKey), 'reversal');
  }

  async statement(day: string): Promise<PlatformStatement> {
    return this.data(await this.call('GET', `/v1/statements?day=${encodeURIComponent(day)}`), 'statement');
  }
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return name === 'TimeoutError' || name === 'AbortError';
}
