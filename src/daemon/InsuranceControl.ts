/**
 * The operator's way to start an insurance payment at a running daemon (`tally terminal insurance`): a unix
 * socket in the data folder, mode 0600 like the status socket, so only the local operator's account reaches it.
 * The client writes one JSON line {item, amountFen}, or {redeemCode} to redeem a service order the patient paid in
 * a booking app (seed 001); the daemon answers with JSON lines: each progress event
 * ({type: 'qr', ...}, {type: 'poll', ...}, {type: 'voucher', ...}), then {type: 'outcome', outcome} and closes.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { closeServer, listenPrivate } from './localSocket.js';
import type { SwipeOutcome } from '../terminal/Terminal.js';
import type { InsurancePayment, InsuranceProgress } from '../terminal/InsurancePayment.js';

export type InsuranceControlLine = InsuranceProgress | { readonly type: 'outcome'; readonly outcome: SwipeOutcome } | { readonly type: 'error'; readonly message: string };

const MAX_REQUEST_BYTES = 1024;

export class InsuranceControl {
  private server: Server | undefined;

  constructor(
    private readonly path: string,
    private readonly payment: InsurancePayment,
  ) {}

  async start(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    this.server = createServer((socket) => {
      socket.setEncoding('utf8');
      socket.on('error', () => socket.destroy());
      let text = '';
      let started = false;
      const send = (line: InsuranceControlLine): void => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(line)}\n`);
      };
      socket.on('data', (chunk: string) => {
        if (started) return;
        text += chunk;
        if (text.length > MAX_REQUEST_BYTES) {
          send({ type: 'error', message: 'request too long' });
          socket.end();
          return;
        }
        const newline = text.indexOf('\n');
        if (newline < 0) return;
        started = true;
        let request: { item?: unknown; amountFen?: unknown; redeemCode?: unknown };
        try {
          request = JSON.parse(text.slice(0, newline)) as typeof request;
        } catch {
          send({ type: 'error', message: 'not a JSON line' });
          socket.end();
          return;
        }
        if (typeof request.redeemCode === 'string') {
          void this.payment.redeem(request.redeemCode).then((outcome) => {
            send({ type: 'outcome', outcome });
            socket.end();
          });
          return;
        }
        if (typeof request.item !== 'string' || typeof request.amountFen !== 'number') {
          send({ type: 'error', message: 'item (text) and amountFen (whole fen), or redeemCode, are required' });
          socket.end();
          return;
        }
        void this.payment.pay({ item: request.item, amountFen: request.amountFen }, send).then((outcome) => {
          send({ type: 'outcome', outcome });
          socket.end();
        });
      });
    });
    await listenPrivate(this.server, this.path);
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
    this.server = undefined;
  }
}

/** Starts a payment at the daemon listening on path; lines arrive through onLine; resolves with the outcome */
export function requestInsurancePayment(path: string, request: { item: string; amountFen: number } | { redeemCode: string }, onLine: (line: InsuranceControlLine) => void): Promise<SwipeOutcome | undefined> {
  return new Promise((resolve) => {
    if (!existsSync(path)) {
      resolve(undefined);
      return;
    }
    const socket = createConnection(path);
    let buffered = '';
    let outcome: SwipeOutcome | undefined;
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let at: number;
      while ((at = buffered.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffered.slice(0, at)) as InsuranceControlLine;
        buffered = buffered.slice(at + 1);
        if (line.type === 'outcome') outcome = line.outcome;
        onLine(line);
      }
    });
    socket.once('error', () => resolve(undefined));
    socket.once('close', () => resolve(outcome));
  });
}
