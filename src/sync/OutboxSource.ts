/**
 * What sync needs from the terminal's ledger, and nothing more. The ledger
 * (src/ledger/Ledger.ts) implements it; sync never touches SQLite itself.
 */
export interface OutboxEntry {
  readonly seq: number;
  readonly raw: Uint8Array /* encoded ledger entry */;
}

export interface OutboxSource {
  readonly terminalId: string;
  /** The terminal certificate (signed record) to send with reports */
  terminalCertificate(): Uint8Array;
  /** Up to limit un-acknowledged entries with seq > afterSeq, in seq order */
  pending(limit: number, afterSeq?: number): OutboxEntry[];
  /** The server committed these: remove them from the outbox (idempotent) */
  acknowledge(seqs: readonly number[]): void;
  /** Entries from seq on (acknowledged or not), for the server's "resend from N" */
  entriesFrom(seq: number, limit: number): OutboxEntry[];
  pendingCount(): number;
}
