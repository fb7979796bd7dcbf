/**
 * The investor's registry at the server: clinics, the terminals expected in
 * them, and every card the issuing stations made (mother, white and batch
 * cards, one-time card ranges) with an issuance log per station. Clinics and
 * terminals are entered by the administrator; cards arrive only in an issuing
 * station's signed export (registry/verifyExport.ts), so nothing here can be
 * typed in by hand. Part of the ServerStore (store.registry): the same
 * contract suite runs it on SQLite and PostgreSQL. Times are ms.
 */

export interface ClinicRow {
  readonly clinicCode: string;
  readonly name: string;
  /** Price of one use in the smallest currency unit; undefined: the server's default pricing */
  readonly pricePerUse?: number;
  /** The investor's share, 0..1; undefined: the server's default */
  readonly investorShare?: number;
  readonly addedAt: number;
}

export type RegisteredTerminalStatus = 'expected' | 'retired';

export interface RegisteredTerminal {
  readonly terminalId: string;
  readonly clinicCode: string;
  /** expected: placed (or to be placed) in the clinic; retired: taken out of service */
  readonly status: RegisteredTerminalStatus;
  readonly note?: string;
  readonly addedAt: number;
  /** When it was retired (set by retiring it, cleared by putting it back in service); undefined while expected */
  readonly retiredAt?: number;
}

/**
 * A terminal as the registry and the reports together see it:
 *   expected: registered, never reported;  active: registered and reporting for its clinic;
 *   wrong-clinic: reporting for another clinic than registered;  unregistered: reporting, not registered;
 *   retired: registered as out of service (reported or not)
 */
export type TerminalState = 'expected' | 'active' | 'wrong-clinic' | 'unregistered' | 'retired';

export interface TerminalRegistryRow {
  readonly terminalId: string;
  readonly state: TerminalState;
  /** The clinic it is registered to (undefined: not registered) */
  readonly clinicCode?: string;
  /** The clinic its certificate names (undefined: never reported) */
  readonly reportedClinicCode?: string;
  readonly firstSeenAt?: number;
  readonly contiguousSeq?: number;
  readonly note?: string;
  /** Retired: since when */
  readonly retiredAt?: number;
}

export type RegistryCardKind = 'mother' | 'white' | 'batch';

/** A card as a verified export gives it to the store */
export interface ImportCard {
  /** Hex card id */
  readonly cardId: string;
  readonly kind: RegistryCardKind;
  /** Hex id of the card that signed it: the mother card for a white card, the white card for a batch card */
  readonly signerCardId?: string;
  readonly clinicCode?: string;
  readonly batchNo?: number;
  /** Batch: one-time cards 1..count */
  readonly count?: number;
  /** White: how many batch cards it may sign */
  readonly quota?: number;
  readonly validFrom?: number;
  readonly validUntil?: number;
  readonly issuedAt: number;
  readonly written: boolean;
  readonly chipUid?: string;
  readonly record: Uint8Array;
}

export interface ImportOneTime {
  readonly batchId: string;
  readonly count: number;
  readonly written: number;
}

/** An export whose signatures the server has checked (registry/verifyExport.ts) */
export interface VerifiedRegistryExport {
  /** Hex SHA-256 of the signed payload: the same export imported twice is recognised */
  readonly digest: string;
  readonly stationId: string;
  readonly stationPublicKey: string;
  readonly motherCardId: string;
  readonly certifiedAt: number;
  readonly exportedAt: number;
  readonly cards: readonly ImportCard[];
  readonly oneTime: readonly ImportOneTime[];
}

export interface ImportSummary {
  readonly stationId: string;
  readonly digest: string;
  /** This very export was imported before: nothing was changed */
  readonly alreadyImported: boolean;
  readonly cardsAdded: number;
  /** Cards the station has written since an earlier export */
  readonly cardsUpdated: number;
  readonly oneTimeBatchesAdded: number;
  readonly oneTimeBatchesUpdated: number;
}

export interface RegistryCardRow extends Omit<ImportCard, 'record'> {
  readonly stationId: string;
  /** White cards: batch cards the registry knows it signed */
  readonly batchesSigned?: number;
}

export interface RegistryBatchRow {
  readonly batchId: string;
  readonly batchNo: number;
  readonly clinicCode: string;
  readonly count: number;
  readonly serialFrom: number;
  readonly serialTo: number;
  /** One-time cards of it the station wrote */
  readonly oneTimeWritten: number;
  readonly batchCardWritten: boolean;
  readonly whiteCardId: string;
  readonly stationId: string;
  readonly issuedAt: number;
  readonly validFrom: number;
  readonly validUntil: number;
  /** The terminal that loaded it, from the reports (undefined: not loaded yet) */
  readonly terminalId?: string;
}

export interface IssuanceRow {
  readonly stationId: string;
  readonly cardId: string;
  readonly kind: RegistryCardKind | 'one-time';
  readonly issuedAt: number;
  /** The card that signed it (mother for white, white for batch, batch for one-time) */
  readonly signerCardId?: string;
  readonly clinicCode?: string;
  readonly batchNo?: number;
  readonly detail: string;
}

export interface StationRow {
  readonly stationId: string;
  readonly publicKey: string;
  readonly motherCardId: string;
  readonly certifiedAt: number;
  readonly firstImportAt: number;
  readonly lastImportAt: number;
  readonly lastExportedAt: number;
}

/** What the registry and the reports disagree on (registry/registryCheck.ts turns each into an alert) */
export interface RegistryFindings {
  /** Batches a terminal loaded or claimed that no imported export holds (empty while no export was imported) */
  readonly unregisteredBatches: ReadonlyArray<{ batchId: string; batchNo: number; clinicCode: string; terminalId: string }>;
  /** Terminals whose certificate names another clinic than the one they are registered to (retired ones aside) */
  readonly wrongClinicTerminals: ReadonlyArray<{ terminalId: string; registeredClinicCode: string; reportedClinicCode: string }>;
  /**
   * Every terminal registered as retired, with when it was retired (undefined: a row written without the time) and
   * when the server received its newest entry (the one of its highest seq; undefined: it never reported). The check
   * alerts when that entry arrived after the retirement.
   */
  readonly retiredTerminals: ReadonlyArray<{ terminalId: string; clinicCode: string; retiredAt?: number; highestSeq?: number; lastReceivedAt?: number }>;
  /** Reporting terminals the registry does not list, for a clinic the registry lists terminals for (`listed` of them) */
  readonly unregisteredTerminals: ReadonlyArray<{ terminalId: string; clinicCode: string; listed: number }>;
}

export interface RegistryStore {
  /** Adds or updates a clinic */
  putClinic(clinic: ClinicRow): Promise<void>;
  clinics(): Promise<ClinicRow[]>;
  /** Adds or updates a terminal's registration */
  putTerminal(terminal: RegisteredTerminal): Promise<void>;
  registeredTerminal(terminalId: string): Promise<RegisteredTerminal | undefined>;
  /** Registered and reporting terminals together, by terminal id */
  terminalRegistry(): Promise<TerminalRegistryRow[]>;

  /** One transaction; idempotent: an export already imported changes nothing, a later one only adds and marks written */
  importExport(verified: VerifiedRegistryExport, at: number): Promise<ImportSummary>;
  stations(): Promise<StationRow[]>;
  cards(kind?: RegistryCardKind): Promise<RegistryCardRow[]>;
  batches(): Promise<RegistryBatchRow[]>;
  /** The registry's batch card of this id (hex), if an export brought it */
  batch(batchId: string): Promise<RegistryBatchRow | undefined>;
  /** True once any station's export was imported: from then on an unknown batch is news */
  inUse(): Promise<boolean>;
  issuance(stationId?: string): Promise<IssuanceRow[]>;
  findings(): Promise<RegistryFindings>;
}
