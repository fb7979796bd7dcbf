/**
 * The troubleshooting table of docs/troubleshooting.md: every code of
 * src/errors.ts with its number and operator messages (read from errors.ts),
 * and its likely cause and remedy (written here). The map is typed by the
 * error names, so a new code without an entry fails the type check, and
 * test/cli/troubleshooting.test.ts fails while the document differs from what
 * this file generates (UPDATE_DOCS=1 rewrites it).
 */
import { ErrorCodes, type ErrorName } from '../src/errors.js';

interface Advice {
  readonly cause: string;
  readonly remedy: string;
}

export const TROUBLESHOOTING: Record<ErrorName, Advice> = {
  INSURANCE_OFFLINE: {
    cause: 'An insurance payment needs the server (it asks the platform and signs the settlement voucher), and the terminal has no link to it now.',
    remedy: 'Take a one-time card or a voucher instead, or wait for the link (tally terminal status shows sync state); nothing was started or charged.',
  },
  SETTLEMENT_VOUCHER_FORGED: {
    cause: "The settlement voucher's signature does not verify, or the server key that signed it is not certified by this terminal's investor root.",
    remedy: 'Do not run the device. Report it to the investor: the refusal is logged. Check that the server runs with the key from tally server certify-key of this root.',
  },
  SETTLEMENT_VOUCHER_OTHER_TERMINAL: {
    cause: 'The settlement voucher names another terminal: it was copied from, or sent to, the wrong terminal.',
    remedy: 'Start the payment again on this terminal; the other order stays with its own terminal (or is reversed when it expires).',
  },
  SETTLEMENT_VOUCHER_EXPIRED: {
    cause: "The voucher arrived after its expiry (the link was down, or the terminal's clock is far ahead of the server's).",
    remedy: 'Start the payment again; the server reverses the settlement of a voucher no terminal used (daily reconciliation lists it until then).',
  },
  SETTLEMENT_VOUCHER_REPLAYED: {
    cause: 'This voucher (its order) was already used on this terminal: a replayed message.',
    remedy: 'Nothing to do: the use was recorded once. Report repeated replays to the investor.',
  },
  SETTLEMENT_VOUCHER_WRONG_ORDER: {
    cause: 'The voucher pays another order than the one this terminal is waiting for.',
    remedy: 'Cancel and start the payment again; check that only one server serves this terminal.',
  },
  INSURANCE_REFUSED_BY_PATIENT: {
    cause: 'The patient pressed refuse on the phone page.',
    remedy: 'Nothing was charged. Ask the patient how they want to pay.',
  },
  INSURANCE_CODE_EXPIRED: {
    cause: 'The QR code and user code were not used within their lifetime (a few minutes).',
    remedy: 'Start the insurance payment again: a new code is shown. Nothing was charged.',
  },
  INSURANCE_FAILED: {
    cause: 'The server could not settle the payment with the insurance platform (down, slow, or it refused the request); the message names the reason.',
    remedy: 'Nothing was charged. Try again later or pay another way; tally server report shows the platform faults.',
  },
  INSURANCE_BUSY: {
    cause: 'A payment started on this terminal is still waiting for the patient.',
    remedy: 'Wait for it to finish or expire (its QR code lasts as long as the server says, 5 minutes by default).',
  },
  INSURANCE_NO_DAEMON: {
    cause: 'tally terminal insurance found no daemon on the insurance socket of this data folder.',
    remedy: 'Start the daemon (tally terminal run --config FILE, or its systemd unit) and give the same --data or --config.',
  },
  UNKNOWN_CARD: {
    cause: 'The card has no tallystick applet: a bank, transit or foreign card, or a card that answers nothing.',
    remedy: 'Use a card issued by the investor. If an issued card shows this, clean its contacts and try again; a card that keeps failing is replaced (tally issue rewrite for one-time cards).',
  },
  CLONED_CARD: {
    cause: "The card's signed record names a key made on the chip the issuer wrote (applet version 2), and this chip could not answer the terminal's fresh challenge with it: the record (and marker) were copied onto another chip.",
    remedy: 'Keep the card aside and report it to the investor with its serial; the refusal is in the ledger and reported to the server. The genuine card still works.',
  },
  VERSION1_CARD: {
    cause: 'A batch or one-time card of applet version 1 holds no key of its own, so nothing proves it is not a copy; this terminal refuses such cards.',
    remedy: 'Replace the batch with version 2 cards. During a migration the terminal setting cards.acceptVersion1 (TALLY_CARDS_ACCEPT_VERSION1=true) accepts them; each one accepted is logged.',
  },
  VOUCHER_MALFORMED: {
    cause: 'The scanned QR code is not a tallystick voucher: its text does not start with TV1:, is not Base45, or its bytes are no voucher record (a payment QR, a web link, a damaged print).',
    remedy: 'Ask the person to open the voucher in the wallet page and scan that code; brighten the phone screen if the scanner misreads it.',
  },
  VOUCHER_FORGED: {
    cause: "The voucher names a voucher key of the trust list, but its signature does not verify with that key: the voucher's bytes were altered or made up.",
    remedy: 'Do not serve the exam on it; report the serial to the back office. The refusal is logged with the key id.',
  },
  VOUCHER_UNKNOWN_KEY: {
    cause: "The voucher is signed by a key id that the terminal's trust list does not hold, holds for trust lists only, or holds outside its validity.",
    remedy: 'If the back office certified a new voucher key, connect the terminal so it gets the new trust list (tally terminal status shows its list); otherwise treat the voucher as forged.',
  },
  VOUCHER_EXPIRED: {
    cause: "The voucher's validity (validFrom..validUntil in the signed record) does not hold the terminal's time.",
    remedy: "The person asks the community centre for a new voucher; the back office voids expired ones. Check the terminal's clock if many vouchers show this.",
  },
  VOUCHER_VOIDED: {
    cause: 'The server answered the online write-off claim: the back office voided this voucher (expired, recalled or reissued).',
    remedy: 'The person asks the community centre; tally server voucher show SERIAL says when and why it was voided.',
  },
  VOUCHER_REVOKED: {
    cause: "The voucher's serial is on the revoked list of the trust list the back office signed (reported lost, reissued, or found written off twice).",
    remedy: 'Do not serve the exam on it; the back office knows why (tally server voucher show SERIAL).',
  },
  VOUCHER_WRITTEN_OFF: {
    cause: 'This voucher was already written off: on this terminal (its ledger holds the serial), or, online, at the server on another terminal.',
    remedy: 'A voucher pays for one exam. If the exam did not start, the use was released and the voucher can be scanned again; otherwise the person needs a new voucher.',
  },
  VOUCHER_WRONG_CLINIC: {
    cause: "The voucher's scope names another clinic than this terminal's, or a device class other than this device's (terminal setting voucher.deviceClass).",
    remedy: 'Send the person to the clinic or device the voucher is for (the wallet page shows it), or set voucher.deviceClass if the device class is missing.',
  },
  VOUCHER_NOT_BOOKED: {
    cause: 'The voucher requires a booking and carries none, or its booked slot (plus 15 minutes either side) does not hold the present time.',
    remedy: 'The person books a slot in the wallet page and shows the re-signed voucher; a person early or late books again.',
  },
  VOUCHER_NOT_ISSUED: {
    cause: "The server answered the terminal's write-off claim: the serial was generated but never sent to a community centre and issued, or the back office does not know it.",
    remedy: 'Check the voucher with the back office (the centre must issue it to the person\'s wallet first); a voucher printed from a test key is not valid here.',
  },
  VOUCHER_UNKNOWN: {
    cause: 'The serial (or batch) named is not in the back office database: mistyped, or made by another back office or a test key.',
    remedy: 'Check the serial on the wallet page or with tally server voucher list; a voucher from another back office is not valid here.',
  },
  VOUCHER_NOT_BOOKABLE: {
    cause: 'A booking is offered only while the voucher is issued to this wallet, not booked, not written off, not voided and within its validity; this one is not.',
    remedy: 'The wallet page shows the voucher\'s state; an expired voucher needs a new one from the community centre, a booked one keeps its slot.',
  },
  VOUCHER_SLOT_FULL: {
    cause: 'Every seat of the time slot is taken: its booked count reached its capacity (one conditional update decides, so two people never get the last seat).',
    remedy: 'Choose another slot; the clinic adds slots with tally server voucher slot add.',
  },
  VOUCHER_STATE_REFUSED: {
    cause: 'The back office operation needs another state: issuing needs a voucher sent to this centre, voiding needs one not written off or voided already.',
    remedy: 'tally server voucher show SERIAL gives the state and who holds it.',
  },
  VOUCHER_KEY_MISSING: {
    cause: 'The server or command was started without a voucher key file, so it cannot sign vouchers, booked vouchers or trust lists.',
    remedy: 'Make one with tally server voucher certify-key --key FILE and the mother card, and give it as --voucher-key FILE.',
  },
  WALLET_QR_REPLAYED: {
    cause: "The person's QR code was already taken by the back office within its lifetime: a screenshot, or the same code shown twice.",
    remedy: 'Ask the person to refresh the wallet page on the phone and show the new code (each is valid two minutes and taken once).',
  },
  TRUST_LIST_STALE: {
    cause: "The terminal's voucher trust list is past its validity and its offline grace period: it has not heard from the server for too long, so it cannot know of revoked vouchers.",
    remedy: 'Connect the terminal to the server; the server sends the current trust list when it comes online. Cards are not affected.',
  },
  TRUST_LIST_MISSING: {
    cause: 'The terminal has never received a voucher trust list (the back office has not certified a voucher key, or the terminal has not been online since).',
    remedy: 'Certify a voucher key (tally server voucher certify-key) and bring the terminal online, or install a list file with tally terminal trust-list --file FILE --data DIR.',
  },
  TRUST_LIST_INVALID: {
    cause: "A trust list or voucher key certificate does not verify against the investor root: altered, cut short, or made with another root's keys. It was not installed.",
    remedy: 'The terminal keeps its previous list. Check that the server runs with the voucher key file certified by this investor\'s mother card.',
  },
  SCAN_NOT_QR: {
    cause: 'The scanner read a code whose AIM symbology identifier is not ]Q (a barcode, a Data Matrix), or sent a line without one (the scanner is not set to transmit AIM identifiers).',
    remedy: 'Scan the QR code of the voucher; configure the scanner for serial (CDC ACM) mode with AIM identifier prefix on.',
  },
  VOUCHER_IDENTITY_NEEDED: {
    cause: "The clinic checks identity (the terminal's voucher.requireIdentity): the voucher verified, and the terminal waits two minutes for its holder's personal QR code before writing it off.",
    remedy: 'Ask the person to open the wallet page and scan the personal QR code it shows; nothing is written off until then.',
  },
  WALLET_QR_WRONG_PERSON: {
    cause: 'The personal QR code verified, but it names another wallet than the one the voucher was issued to.',
    remedy: 'The voucher belongs to someone else: ask for the holder; scan the voucher again, then the holder\'s own code.',
  },
  VOUCHER_HOLDER_UNNAMED: {
    cause: 'The clinic checks identity, and this voucher was not issued to a wallet (it carries no wallet binding), so no personal QR code can prove who holds it.',
    remedy: 'Have the community centre issue a voucher to the person\'s wallet, or turn voucher.requireIdentity off if the clinic does not check identity.',
  },
  WALLET_QR_NO_VOUCHER: {
    cause: 'A personal QR code was scanned with no voucher waiting for it (none scanned, or the last one waited more than two minutes).',
    remedy: 'Scan the voucher first, then the personal QR code.',
  },
  FORGED: {
    cause: "A signature in the card's chain does not verify: the record was altered, copied onto a card with other data, or made with a key that is not the investor's.",
    remedy: 'Keep the card aside and report its serial to the investor; the refusal is in the ledger and reported to the server.',
  },
  WRONG_TIER: {
    cause: 'A card of the wrong kind for this step: a white or mother card swiped at the terminal, or a one-time card used to provision.',
    remedy: 'Swipe one-time cards for uses and batch cards to load a batch; provision only with the mother card.',
  },
  WRONG_CLINIC: {
    cause: "The batch was issued for another clinic than the one in this terminal's certificate.",
    remedy: "Use cards issued for this clinic; the issuer makes batches with --clinic set to the terminal's clinic code (tally terminal status shows it).",
  },
  EXPIRED: {
    cause: "The batch (or the white card that signed it) is outside its validity, or the terminal's clock is wrong.",
    remedy: 'Check the clock in tally terminal status (a clock reset to 1970 is marked untrusted); otherwise ask the issuer for a new batch.',
  },
  REVOKED: {
    cause: 'The card or its batch is on the deny list the server pushed (reported lost, stolen or cloned).',
    remedy: 'Do not use the card; the issuer can tell why from the registry and the server.',
  },
  OUT_OF_RANGE: {
    cause: "The one-time card's serial is outside 1..count of its batch: a made-up card.",
    remedy: 'Keep the card aside and report it to the investor.',
  },
  ALREADY_USED: {
    cause: "This one-time card's serial was already deducted on this terminal (the card itself, or a copy of it).",
    remedy: 'Use a new one-time card. If a use was cut short, tally terminal status and the ledger show whether it was charged.',
  },
  BATCH_NOT_LOADED: {
    cause: "The card's batch card was never swiped on this terminal, or was loaded on another terminal.",
    remedy: "Swipe the batch card once on this terminal (it loads on one terminal only), then the one-time cards.",
  },
  BATCH_EXHAUSTED: {
    cause: "Every one-time card of the batch has been used.",
    remedy: 'Load the next batch card; the issuer makes one with tally issue batch.',
  },
  CARD_REMOVED: {
    cause: 'The card left the reader (pulled out, bad contact) before the terminal finished with it; nothing was charged unless the ledger says so.',
    remedy: 'Insert the card again and leave it until the display says to remove it.',
  },
  NOT_PROVISIONED: {
    cause: 'The terminal has no identity yet: its data folder is new, empty or the wrong one.',
    remedy: 'Provision it with the mother card (tally terminal provision); check terminal.dataDir in the configuration.',
  },
  BATCH_ALREADY_LOADED: {
    cause: 'The batch card was swiped again on the terminal that already loaded it.',
    remedy: 'Nothing to do: swipe the one-time cards.',
  },
  CARD_BLANK: {
    cause: 'The card has the applet but was never personalised (a blank card, or issuing stopped before it was written).',
    remedy: 'Issue the card first; for a one-time card that was not written, tally issue rewrite --batch N --serial S.',
  },
  PIN_WRONG: {
    cause: 'The PIN given for the mother or white card is not its PIN; each wrong try uses one of its 3 tries.',
    remedy: 'Enter the right PIN. A correct PIN resets the counter; after 3 wrong tries the card is blocked.',
  },
  PIN_BLOCKED: {
    cause: 'Three wrong PINs in a row blocked the card. The PIN is never stored, so it cannot be recovered.',
    remedy: 'A blocked white card is replaced by a new one made with the mother card; a blocked mother card means contacting the investor (its root key cannot be copied).',
  },
  PIN_REQUIRED: {
    cause: 'A signing command reached the card before its PIN was verified (the card lost power between the two, or a tool bug).',
    remedy: 'Run the step again and keep the card in the slot until the tool asks for another card.',
  },
  CARD_STATE: {
    cause: 'The card is not in the life-cycle state for the command: writing to an activated card, or using one still in personalisation.',
    remedy: 'Use a blank card for issuing targets and an issued card for signing; tally card show tells which a card file is.',
  },
  CARD_ALREADY_WRITTEN: {
    cause: 'A write-once field (key, record, consumed marker) was already written.',
    remedy: 'Use another blank card; the card keeps what it has.',
  },
  QUOTA_EXHAUSTED: {
    cause: 'The white card has signed as many batch cards as its quota allows (the card itself counts).',
    remedy: 'Make a new white card with the mother card (tally issue white --quota N).',
  },
  APPLET_NOT_FOUND: {
    cause: 'The card has no tallystick applet (a foreign card) or the applet did not answer SELECT.',
    remedy: 'Use a tallystick card; try again after re-inserting it.',
  },
  APDU_REJECTED: {
    cause: 'The card refused a command with a status word the software does not expect (a card of another applet version, or a damaged card).',
    remedy: 'Try again; if it persists, replace the card and report its status word (in the log at debug level).',
  },
  CARD_MEMORY: {
    cause: 'The card reported an EEPROM write failure (worn or damaged chip).',
    remedy: 'Replace the card; a one-time card is rewritten onto a new blank card with tally issue rewrite.',
  },
  MALFORMED_RECORD: {
    cause: "The data on the card does not parse as a tallystick record (corrupted, truncated or not written by the issuing station).",
    remedy: 'Replace the card; report it if it was issued by the investor.',
  },
  MALFORMED_APDU: {
    cause: 'The card rejected a command as badly formed (wrong length or parameters): a reader or software mismatch.',
    remedy: 'Check the reader firmware and the software version; report it with the log at trace level.',
  },
  ISSUE_WRONG_CARD: {
    cause: 'The card in the slot is not the one this step needs: a blank card where the mother or white card belongs, another kind of card, or a different chip put back during a card swap.',
    remedy: 'Insert the card the prompt names; when the tool asks for a card "again", put back the same card.',
  },
  ISSUE_QUOTA: {
    cause: "The white card's batch quota is used up, or the registry already has its mother card.",
    remedy: 'Make a new white card with the mother card; there is one mother card per registry.',
  },
  ISSUE_NOT_BLANK: {
    cause: 'The card offered as a new card is already personalised.',
    remedy: 'Insert a blank card (new from the card supplier).',
  },
  ISSUE_REGISTRY: {
    cause: 'The issuing registry database could not be read or written (disk full, permissions, another program holding it).',
    remedy: 'Check the disk and the --registry path; keep one issuing tool running at a time; restore the registry from its backup.',
  },
  STORAGE_FAULT: {
    cause: 'The terminal cannot write its ledger (disk full, read-only file system, damaged database, or a database made by a newer version). The terminal refuses service rather than run unrecorded.',
    remedy: 'Free space or fix the file system under terminal.dataDir, then restart the service; never delete terminal.db (it holds unreported uses). A database newer than the software needs the newer software.',
  },
  ALREADY_PROVISIONED: {
    cause: 'The data folder already holds a provisioned terminal.',
    remedy: 'Nothing to do. To reprovision, move the old data folder away first, after its ledger has been reported to the server.',
  },
  LEDGER_BROKEN: {
    cause: 'tally ledger verify found a gap, a broken hash chain, a bad signature or a serial used twice: the ledger was altered, reordered or truncated.',
    remedy: 'Keep the database file as evidence and compare with the server\'s copy; the message names the first bad entry.',
  },
  ROOT_MISMATCH: {
    cause: 'The mother card offered at provisioning is not the investor root given with --root-fingerprint.',
    remedy: 'Use the investor\'s mother card, and the fingerprint printed by tally issue mother.',
  },
  DEVICE_FAULT: {
    cause: 'The medical device did not report a start within device.startTimeoutSeconds, or reported a fault. The use was released and not charged.',
    remedy: 'Check the device and its relay wiring; swipe a new card once the device is ready.',
  },
  BUSY: {
    cause: 'A card came while the terminal was handling another card or a device session runs.',
    remedy: 'Wait for the current use to finish, then swipe.',
  },
  CLOCK_RESET_REFUSED: {
    cause: "A clock reset's proof does not hold: the mother card's statement names another terminal or another ledger head (it is good once, for the entry it follows), is not signed by this terminal's investor root, or a server checkpoint does not cover the terminal's last clock.refused entry.",
    remedy: 'Run tally terminal clock-reset again on this terminal with the mother card of its investor (tally terminal status shows the trust anchor), or let the daemon sync: the server\'s next signed checkpoint resets the clock by itself.',
  },
  STORAGE_FULL: {
    cause: 'The disk under the data folder is full (SQLite SQLITE_FULL, or it could not extend the database or its -shm file; ENOSPC from the file system). The terminal refuses service rather than run unrecorded; nothing committed is lost.',
    remedy: 'Free space on that file system (df -h DATA), then retry or restart the service; never delete terminal.db or its -wal file (they hold unreported uses).',
  },
  STORAGE_READ_ONLY: {
    cause: 'The data folder or the database file cannot be written (a read-only mount, a file system remounted read-only after errors, or wrong permissions: SQLITE_READONLY, EROFS, EACCES).',
    remedy: 'Remount the file system read-write or fix the owner and mode of the data folder (the daemon writes terminal.db, its -wal and -shm beside it), then restart the service.',
  },
  DATABASE_CORRUPT: {
    cause: 'The database file is damaged or is not a database at all (SQLITE_CORRUPT, SQLITE_NOTADB): a storage failure, a partial copy, or another file in its place.',
    remedy: 'Keep the damaged file for the audit, run tally ledger verify --db FILE to see the last good seq, and restore terminal.db from its backup; the server still holds every entry it received.',
  },
  DATABASE_CANTOPEN: {
    cause: 'SQLite could not open the database (SQLITE_CANTOPEN): the file or its folder is missing, or the folder is not writable so its -wal/-shm files cannot be made.',
    remedy: 'Check the path given with --data/--db and that the folder exists and is writable by the service user; a terminal not provisioned yet needs tally terminal provision.',
  },
  CLOCK_AHEAD: {
    cause: "The terminal's local clock reads far ahead (more than 7 days) of the last time it trusted: an RTC glitch or a clock set forward. The jump is not taken: the high-water mark stays, entries are marked untrusted, and a card that would be valid at the trusted time is refused rather than judged by the jumped clock.",
    remedy: 'Correct the board clock (timedatectl), or let the daemon reach the server: its time is taken and the mark follows it. The clock.refused entry and tally terminal status show the jump. Nothing has to be reset: the terminal trusts its clock again as soon as it is back.',
  },
  CONFIG_UNKNOWN_ENV: {
    cause: 'The environment holds a TALLY_ variable that names no setting (tally terminal run --settings lists every setting with its variable) nor a secret the tools read: usually a typo, whose value would otherwise be ignored without a word.',
    remedy: 'Fix the name the warning gives (it says the closest setting\'s variable), e.g. in the systemd unit\'s Environment= lines; the daemon warns at every start until then.',
  },
  CONFIG_UNKNOWN_SETTING: {
    cause: 'The configuration file names a setting the schema does not have: usually a typo or a section in the wrong place (the listing names the dotted key).',
    remedy: 'Fix or remove the key; tally terminal run --settings lists every setting, and schemas/*.schema.json lets an editor flag it as you type (README, Configuration).',
  },
  CONFIG_WRONG_TYPE: {
    cause: 'A setting holds a value of the wrong kind: text where a whole number or true/false is wanted, an empty string, a list where a mapping is wanted (or a TALLY_ variable that does not read as one).',
    remedy: 'Give the value as the listing says (e.g. 115200, not "fast"; true or false); quote numbers meant as text, such as phone numbers.',
  },
  CONFIG_OUT_OF_RANGE: {
    cause: 'A whole-number setting is below its minimum or above its maximum (the listing says which bound).',
    remedy: 'Give a value inside the bounds; --settings and the JSON Schema show them.',
  },
  CONFIG_NOT_ALLOWED: {
    cause: 'A setting takes one of a few values (a backend, a language, a log level) and holds another.',
    remedy: 'Use one of the values the listing names.',
  },
  CONFIG_REQUIRED: {
    cause: 'A setting that has no default was given neither in the file nor by its TALLY_ variable (nor, for the server, by its command line flag).',
    remedy: 'Set it in the file, or by the variable or flag the listing names.',
  },
  CONFIG_FILE_UNREADABLE: {
    cause: 'The file given with --config does not exist, cannot be read by the service user, or is not YAML or JSON (the listing quotes the parser\'s message with its line).',
    remedy: 'Check the path and the permissions; fix the syntax at the line named (an editor with the yaml-language-server and the schema shows it).',
  },
  HTTP_NOT_FOUND: {
    cause: 'The HTTP API has no such resource: an unknown path, or a terminal, clinic or voucher the server does not know (the answer names it).',
    remedy: 'Check the id or path; GET /api lists the routes (docs/console.md).',
  },
  HTTP_UNAVAILABLE: {
    cause: 'The server cannot answer this request now: a part it needs is not configured (no investor root, no voucher key) or not available (chromium for a PDF).',
    remedy: 'The answer says which part; start the server with it (tally server run --help) or install what is missing, then try again.',
  },
  BAD_DIODE_FRAME: {
    cause: 'A datagram over the one-way diode is not a frame of firmware-protocol/gateway-diode.md (wrong magic, version, lengths), or a frame to send does not fit one.',
    remedy: 'Check that both sides of the diode run the same release; the receiver drops the datagram and the sender resends it from its archive.',
  },
  SERVER_TIME_BEHIND: {
    cause: "The server's time (in an ack or a checkpoint) is more than the allowed margin behind the latest time this terminal has already recorded: the server's clock is wrong, or the message is an old one replayed.",
    remedy: "Check the server's clock (timedatectl, NTP); the terminal keeps its own time meanwhile and records the refusal. Nothing to do on the terminal.",
  },
  LEDGER_ROLLBACK: {
    cause: 'A witness outside the terminal database holds a later ledger than the database: the relay board keeps a higher chain head, the server signed a checkpoint beyond it, or a card carries this terminal\'s consumed marker from an entry the ledger no longer has. The database was restored from an old copy or cut short; the terminal refuses service and has recorded and reported it.',
    remedy: 'Do not swipe further cards. Keep the data folder as evidence and call the investor: tally ledger verify --checkpoint with the server\'s checkpoint names the missing seqs; the server\'s copy of the ledger holds what was reported before the loss.',
  },
  LEDGER_TRUNCATED: {
    cause: 'tally ledger verify --checkpoint: the ledger verifies up to its last entry, but that is before the seq the server signed in its checkpoint, or the entry at that seq has another hash: entries were cut off or replaced after the server saw them.',
    remedy: 'Compare with the server\'s copy of the ledger (tally audit export on the server); the output names the last good seq and the checkpoint\'s seq.',
  },
  DATABASE_UNREADABLE: {
    cause: "tally ledger verify (or the Python verifier) could not read the terminal's database to its end: the file is truncated, its pages are corrupt, or it is not an SQLite database. The output names the last seq read and whether the entries before it verify.",
    remedy: 'Keep the data folder as evidence and do not run the terminal on it. The entries up to the last good seq stand; the server holds every entry it acked (compare with tally audit export from the server), and a backup copy may hold the rest (verify it the same way).',
  },
  BAD_AUDIT_BUNDLE: {
    cause: 'The file given to tally audit verify or compare is not a tallystick-audit-bundle/3 (or /2) JSON file (a format 1 bundle is refused: export it again), its statement is of another format than the bundle, or one of its fields is of the wrong form (the message names the field).',
    remedy: 'Export it again with tally audit export (on the terminal or the server) and copy it whole; do not edit it.',
  },
  AUDIT_BUNDLE_INVALID: {
    cause: "tally audit verify: the bundle's ledger breaks a rule of ledger-format.md section 7, is cut short or forked against its checkpoint, or its statement is not signed by a server key this root certifies, or lists other entries than the bundle holds.",
    remedy: 'Read the verdict: it names the part, the rule and the seq. Check that --root (or --root-fingerprint) is the investor root you trust. A broken terminal ledger is evidence: keep the data folder.',
  },
  AUDIT_HALVES_DIFFER: {
    cause: "tally audit compare: the terminal's ledger and the server's hold different entries: entries the server never received (not yet synced, or lost), entries the terminal no longer has (cut, restored from an older copy), or another entry at the same seq (a fork).",
    remedy: "Sync the terminal and export both halves again: entries only on the terminal that the server then acks were merely unsent. Entries the terminal lacks, or that differ, are what the clinic and the investor must settle: the listing gives each seq and the use it charges.",
  },
  STATEMENT_INVALID: {
    cause: "The server's signed statement in an audit bundle is not signed by its key, or its key is not certified by the investor root given, or the statement does not parse.",
    remedy: 'Ask the investor for a bundle made by tally audit export on the server with the key tally server certify-key made; check the root fingerprint.',
  },
  STATEMENT_MISMATCH: {
    cause: "The server's statement is signed, but lists other entries (seq and hash) than its bundle holds, another terminal, clinic or period, uses per day or batch that are not those of its entries, or an income that is not its uses at its own price and share.",
    remedy: 'The bundle was altered after the server signed it, or put together from two exports, or the server signed figures its entries do not bear out: keep the file (it is signed evidence) and ask for a new export; the signed statement is what the server vouches for.',
  },
  BOARD_WITNESS_MISSING: {
    cause: 'The relay board speaks serial protocol 1, which keeps no chain head, and device.requireBoardWitness is set in the terminal configuration.',
    remedy: 'Flash the board with firmware that speaks protocol 2 (firmware-protocol/serial-protocol.md section 6.5), or unset requireBoardWitness to run without the board witness (the daemon logs board-witness-missing at each start; the server and the cards remain the witnesses).',
  },
  MODEM_UNAVAILABLE: {
    cause: "The daemon cannot open the GSM modem's serial device (sms.modemPath): the modem is unplugged, powered off, or another program holds the port.",
    remedy: 'Check the cable and power of the modem and that sms.modemPath names it (ls -l /dev/serial/by-id). The daemon reopens the port by itself once it is back; reports wait and are sent then.',
  },
  MODEM_TIMEOUT: {
    cause: 'The modem took the command but sent no final answer (OK, ERROR) within the timeout: it hung, is rebooting, or the line speed is wrong.',
    remedy: 'Power-cycle the modem. If it keeps happening, check sms.baudRate against the modem. The report is sent again at the next attempt.',
  },
  MODEM_ERROR: {
    cause: 'The modem answered ERROR (or +CME ERROR) to an AT command: it does not support PDU mode, or it is in a state that refuses the command.',
    remedy: 'Check that the modem is a GSM modem that speaks TS 27.005 PDU mode (AT+CMGF=0). The log names the command and the answer.',
  },
  MODEM_SMS_ERROR: {
    cause: 'The modem refused to send or read an SMS with +CMS ERROR <n> (the log has n: 330 SMSC unknown, 331 no network service, 500 unknown, 310 SIM not inserted...).',
    remedy: 'Check the SIM has credit and an SMS service centre number (AT+CSCA?). The report is sent again at the next attempt, within the daily budget.',
  },
  MODEM_SIM_NOT_READY: {
    cause: 'AT+CPIN? did not answer READY: no SIM, or the SIM wants a PIN or PUK.',
    remedy: 'Insert the SIM, or remove its PIN on a phone first (the terminal does not store a SIM PIN).',
  },
  MODEM_NO_NETWORK: {
    cause: 'The modem is not registered on a mobile network (AT+CREG? not 1 or 5, or AT+CSQ 99): no coverage, antenna off, or the SIM is barred.',
    remedy: 'Check the antenna and the coverage where the terminal stands. The report waits and goes as soon as the network is back.',
  },
  BAD_SMS_PDU: {
    cause: 'An SMS PDU did not decode (TS 23.040): truncated, lengths that do not match, an unsupported coding, or octets after the user data.',
    remedy: 'Nothing to do for one message: it is logged and dropped. Many of them point to a modem or gateway that alters PDUs; the log has the hex.',
  },
  SMS_BUDGET_EXHAUSTED: {
    cause: 'The terminal has sent sms.maxPerDay SMS reports today; SMS costs money, so it sends no more until the next UTC day.',
    remedy: 'None needed: the next report goes after midnight UTC and carries everything since the last one. Raise sms.maxPerDay if the investor wants more.',
  },
  BOARD_HEAD_REFUSED: {
    cause: 'The relay board refused RELAY_ENABLE_HEAD: the head the terminal sent is not above the one in the board\'s memory, so the ledger is behind what the board has already seen.',
    remedy: 'As for LEDGER_ROLLBACK: the terminal stays out of service; call the investor. Clearing the board\'s head is a service procedure on the board itself.',
  },
  BAD_CHECKPOINT: {
    cause: 'A checkpoint (in an ack from the server, or a file given to tally ledger verify --checkpoint) does not parse, or its signature or its server-key certificate does not verify against the investor root.',
    remedy: 'Use the checkpoint exported by tally ledger checkpoint or the server; check that the server key was certified by this investor\'s root (tally server certify-key).',
  },
  READER_UNAVAILABLE: {
    cause: 'The reader cannot be reached: serial port missing or taken, board unpowered, pcscd not running, no PC/SC reader with that name, or the pcsclite addon not built.',
    remedy: 'Check reader.serial.path (ls -l /dev/ttyS*; the service user needs the dialout group) or pcscd (systemctl status pcscd; pcsc_scan lists the readers, reader.pcsc.readerName must be part of one name).',
  },
  READER_TIMEOUT: {
    cause: 'The reader, or the operator, did not answer in time: no ACK from the board, a card that never answers, or no card inserted before --card-timeout.',
    remedy: 'Insert the card the prompt asks for within the timeout (raise --card-timeout); check the serial cable and baud rate (reader.serial.baudRate); with log level trace the frames show in hex.',
  },
  TRANSPORT_CLOSED: {
    cause: 'The serial port or PC/SC connection closed under the software (USB unplugged, board reset, pcscd restarted).',
    remedy: 'The daemon reopens the port by itself; if it does not come back, check cabling and power. Tools: run the step again.',
  },
  FRAME_REJECTED: {
    cause: 'The microcontroller refused a frame (NAK): corrupted bytes on the line, or firmware speaking another protocol version.',
    remedy: 'Check the cable and baud rate; update the board firmware to the protocol in firmware-protocol/.',
  },
  READER_IN_USE: {
    cause: 'Another program holds the reader: the daemon while a tool runs on the same reader, a second pcscd, or another PC/SC program with the card open.',
    remedy: 'Stop the other program (systemctl stop tallystick-terminal before using the tools on the terminal\'s own reader); the message names the process where known.',
  },
  SYNC_REJECTED: {
    cause: "The server refused a report or message (unknown terminal, certificate not accepted, rejected content).",
    remedy: "Check the terminal's registration at the server and its TLS files (sync.tls.*); the server logs the reason.",
  },
  BAD_MESSAGE: {
    cause: 'A message from the broker or the server could not be parsed or failed its signature check.',
    remedy: 'Nothing is applied from it. Check that terminal and server versions match; report repeated cases.',
  },
  REGISTRY_IMPORT_REFUSED: {
    cause: "An issuing station's export did not verify: its station key is not certified by the mother card, a signature fails, or a card in it does not chain to the investor root.",
    remedy: 'Nothing is imported. The refusal names the reason; certify the station (tally issue certify-station) or export again from the right station.',
  },
  BAD_SMS_REPORT: {
    cause: 'A binary SMS that begins like a tallystick report does not decode: truncated, padded, concatenated with another, or of an unknown version.',
    remedy: 'Nothing to do for one message (logged with its hex and the sender). Many from one number: check that terminal\'s software version.',
  },
  SMS_REPORT_FORGED: {
    cause: "The SMS report's signature does not verify with the terminal's ledger key: it was altered on the way, or someone else sent it.",
    remedy: 'Look at the sender number in the log; a terminal that sends only forged reports may have been replaced. The report is not recorded.',
  },
  SMS_REPORT_REPLAYED: {
    cause: 'The report counter is not above the last one the server accepted from this terminal: the same SMS delivered twice by the network, or an old one sent again.',
    remedy: 'None for a duplicate delivery (SMS networks do this). Many replays from one sender: someone is resending recorded SMS; the server records nothing from them.',
  },
  SMS_UNKNOWN_TERMINAL: {
    cause: 'No terminal the server knows (from the ledger reports it has received or the registry) has the terminal tag in the SMS.',
    remedy: 'A terminal is known once its provisioning entry reached the server over the data link. Check the registry for the terminal.',
  },
  SMS_HEAD_CONTRADICTED: {
    cause: 'The ledger the terminal later sent over the data link does not hold the chain head it reported by SMS (another hash at that seq, or it ends before it): the ledger was rolled back or forked while the link was down.',
    remedy: 'Treat the terminal as tampered: take its database and the SMS log, and compare with tally ledger verify. The alert stays open until an operator closes it.',
  },
  BAD_SMS_COMMAND: {
    cause: 'An SMS to the terminal that begins like a server command does not decode.',
    remedy: 'Nothing to do for one message; the terminal keeps its last good state.',
  },
  SMS_COMMAND_REFUSED: {
    cause: 'An SMS command did not verify with the server key the terminal holds (from a verified checkpoint), names another terminal, or its counter is not above the last accepted one.',
    remedy: 'None if it was a duplicate. Otherwise someone sent the terminal a forged command: nothing was applied.',
  },
  SMS_NOT_A_REPORT: {
    cause: 'An SMS reached the server number that is not a tallystick message (a person\'s text, an operator notice).',
    remedy: 'None; it is logged with the sender and dropped.',
  },
  PKI_PASSPHRASE: {
    cause: "The TLS CA's private key (ca-key.pem in the PKI folder) is encrypted at rest and the passphrase given (--ca-passphrase-file, TALLY_CA_PASSPHRASE) is missing or wrong.",
    remedy: 'Give the passphrase the CA was made with (tally pki init). Without it no certificate can be issued, renewed or revoked; nothing was changed.',
  },
  PKI_REFUSED: {
    cause: 'A certificate request (CSR) was refused: its signature is broken, its name is not the expected terminal id, it asks for the server identity, or its key is too weak.',
    remedy: 'Make the request again on the terminal (tally terminal provision makes it; tally terminal enrol sends it) with the terminal id it is registered under.',
  },
  CERT_REVOKED: {
    cause: 'The certificate is on the CA\'s revocation list: the terminal was retired in the registry (or the certificate revoked with tally pki revoke).',
    remedy: 'A retired terminal is refused by the broker and cannot renew. Put it back in service (tally server registry add-terminal ID --clinic C) and enrol it again with a new token.',
  },
  UNAUTHENTICATED: {
    cause: 'A console or API request came without a session cookie (or bearer token) while the server has console users: every route then needs a login.',
    remedy: 'Log in at the dashboard (or POST /api/session {username, password}); machine clients send Authorization: Bearer <admin token>.',
  },
  FORBIDDEN: {
    cause: "The logged-in user's role may not use this route (a clinic asking for another clinic, a system administrator asking for income, an auditor writing). Each refusal is logged (http.forbidden).",
    remedy: 'Ask the system administrator for a user of the right role (tally server user add --role ...); docs/console.md lists what each role sees.',
  },
  BAD_CSRF: {
    cause: 'A write (POST) with a session cookie did not carry the X-CSRF-Token header of that session, or came from another origin.',
    remedy: 'Reload the dashboard (it reads the token from GET /api/session); a script sends the token it got at login.',
  },
  LOGIN_RATE_LIMITED: {
    cause: 'Too many failed logins for this user name (5 in 15 minutes) or from this address (20 in 15 minutes), counted in the database for every server instance.',
    remedy: 'Wait for the Retry-After seconds. Repeated refusals for one account are a guessing attack: read the audit log (login.failed).',
  },
  SESSION_EXPIRED: {
    cause: 'The session passed its 12-hour lifetime or was idle for 30 minutes, or was logged out.',
    remedy: 'Log in again.',
  },
  LOGIN_FAILED: {
    cause: 'The user name is unknown, disabled, or the password does not match its scrypt hash (the answer does not say which).',
    remedy: 'Type it again; a forgotten password is reset by the system administrator with tally server user passwd on the server.',
  },
  WEAK_PASSWORD: {
    cause: 'The new password is shorter than 12 characters, longer than 200, or equals the user name.',
    remedy: 'Choose a longer pass phrase; no default password exists.',
  },
  USER_EXISTS: {
    cause: 'tally server user add was given a user name the store already holds.',
    remedy: 'Choose another name, or change the password with tally server user passwd.',
  },
  LOGIN_TOKEN: {
    cause: 'The one-time login link (the demo prints one) was used already, has expired (10 minutes), or was never issued.',
    remedy: 'Ask for a new one (npm run demo -- --serve prints it) or log in with a password.',
  },
  UNKNOWN_AGENT: {
    cause: 'A clinic was assigned to an agent, or an agent user was added, for an agent code the registry does not hold.',
    remedy: 'Add the agent first: tally server agent add CODE --name NAME --share S.',
  },
  UNKNOWN_USER: {
    cause: 'tally server user disable/enable/role, or POST /api/users/change, named a user the store does not hold.',
    remedy: 'Check the name with tally server user list.',
  },
  LAST_SYSADMIN: {
    cause: 'Disabling the last enabled system administrator, or giving it another role, would leave nobody to manage users.',
    remedy: 'Add or enable another system administrator first (tally server user add NAME --role sysadmin).',
  },
  BAD_ROLE_SCOPE: {
    cause: 'tally server user add --role clinic without --clinic, --role agent without --agent, or a scope given to another role.',
    remedy: 'Give --clinic CODE for a clinic user and --agent CODE for an agent user, and neither for the others.',
  },
  STATEMENT_CLINIC_UNKNOWN: {
    cause: 'GET /api/statement (or the statement page) asked for a clinic the registry does not list and no terminal of which has reported.',
    remedy: 'Check the clinic code (tally server registry list clinics); a new clinic has a statement once it is registered.',
  },
  DENYLIST_FULL: {
    cause: 'POST /api/registry/cards/revoke (the registry page) for a new card while the deny list already holds 12,000 cards, the most one deny-list message to a terminal carries (MAX_DENYLIST_ENTRIES).',
    remedy: 'Revoke the batch or the white card the cards came from instead of each card; a card that expired need not stay listed.',
  },
  STATEMENT_PDF_UNAVAILABLE: {
    cause: 'The server prints the statement PDF with chromium (playwright-core): it is not installed at /usr/bin/chromium, or it failed to start or print (out of memory, a broken install).',
    remedy: 'Run scripts/setup.sh as root (it installs chromium and fonts-noto-cjk); the statement page itself works without it. The server log names the failure.',
  },
  ENROL_TOKEN: {
    cause: 'The one-time enrolment token was not issued for this terminal, was used already, or expired.',
    remedy: 'Ask the server administrator for a new one: tally pki token TERMINAL-ID --pki DIR; it works once.',
  },
  TLS_CA_NOT_VOUCHED: {
    cause: "The TLS CA the terminal was given is not the one the investor's mother card certified (its signed record is missing, altered, for another CA, or from another root).",
    remedy: 'Certify the CA with the mother card (tally issue certify-ca) and give the terminal that record with the CA certificate (tally terminal enrol fetches both).',
  },
  ENROL_FAILED: {
    cause: 'The EST request to the server failed: the server is unreachable, its HTTPS certificate is not from the TLS CA, or it answered with an error.',
    remedy: 'Check --server (https://HOST:PORT), the network, and that tally server run has --est-port; the message gives the HTTP status or the network error. The terminal keeps its current certificate.',
  },
  INSURANCE_PLATFORM_DOWN: {
    cause: 'The insurance platform refused or dropped the connection.',
    remedy: 'Check the platform URL (--insurance-url) and that the platform runs; the order waits and fails cleanly, nothing is charged twice.',
  },
  INSURANCE_PLATFORM_TIMEOUT: {
    cause: 'The insurance platform took the request but did not answer in time: it may have settled.',
    remedy: 'Nothing to do by hand: the server asks the platform by the idempotency key and records the settlement if one was made (also at its next start).',
  },
  INSURANCE_PLATFORM_ERROR: {
    cause: 'The insurance platform answered an error (5xx or an unreadable answer).',
    remedy: "Retry later; if it persists, contact the platform's operator with the time and the order id.",
  },
  INSURANCE_NOT_INSURED: {
    cause: 'The platform knows no insured person with the e-credential the phone gave.',
    remedy: "The patient checks the credential in their insurance app, or pays another way.",
  },
  INSURANCE_NOT_COVERED: {
    cause: "The platform's coverage rules do not cover this exam item.",
    remedy: 'The patient pays another way; check the item code configured for the terminal (insurance.item).',
  },
  INSURANCE_IDEMPOTENCY: {
    cause: 'The platform has a different request under the same idempotency key: two servers share a store badly, or the key scheme changed.',
    remedy: 'Stop and report it: this is a bug. The order is left as it is; the reconciliation lists it.',
  },
  INSURANCE_UNKNOWN_ORDER: {
    cause: 'No insurance order, device code or user code with this value exists (mistyped, or from another server).',
    remedy: 'Scan the QR code on the terminal again, or start a new payment there.',
  },
  INSURANCE_CODE_EXPIRED_SERVER: {
    cause: 'The authorisation lived out its lifetime before the patient consented.',
    remedy: 'Start the payment again at the terminal; nothing was charged.',
  },
  INSURANCE_LINK_TAKEN: {
    cause: 'Another phone opened this payment link first; one link serves one phone.',
    remedy: 'Use the phone that opened it first, or cancel and start again at the terminal.',
  },
  INSURANCE_TOKEN_USED: {
    cause: "The order's authorisation token was already spent on a settlement: a repeated consent.",
    remedy: 'Nothing to do: the order was settled once.',
  },
  INSURANCE_TOKEN_INVALID: {
    cause: 'The authorisation token is not the one issued for this order (altered, or the order changed after it was issued).',
    remedy: 'Start the payment again; report repeated cases to the investor.',
  },
  INSURANCE_STATE: {
    cause: 'The order is already past this step (settled, refused, expired or failed), or the platform refused it as it stands.',
    remedy: 'Look at the order in the report; start a new payment if needed.',
  },
  INSURANCE_NO_SIGNING_KEY: {
    cause: 'The server was started without --signing-key, so it cannot sign settlement vouchers.',
    remedy: 'Make the key with tally server certify-key and start tally server run --signing-key FILE.',
  },
  INSURANCE_PLATFORM_NO_ANSWER: {
    cause: 'The connection to the insurance platform opened and was dropped before its answer (its process died, a proxy cut it): it may have done the work.',
    remedy: 'Nothing to do by hand: a settlement waits (settling) until the server finds it under its idempotency key, or finds none and fails the order (nothing charged); the sweep asks again every 30 s. If it keeps happening, check the platform and the network between.',
  },
  INSURANCE_TERMINAL_HTTP_REFUSED: {
    cause: 'Something called one of the old terminal HTTP routes (POST /api/insurance/device_authorization, /token or /outcome). They took a terminal id from the body with no credential, so anyone on the network could start, collect or reverse an order; terminals now make these requests only over MQTT, where the broker knows each by its certificate and confines it to its own topics.',
    remedy: 'Nothing was changed. A terminal showing it runs software older than its server: update it (it uses the MQTT insurance topic). Anything else calling the route is not a terminal: find the address in the server log (event insurance.terminal-http-refused).',
  },
  INSURANCE_SERVICE_ORDER_OTHER_CLINIC: {
    cause: "A terminal was asked to redeem a service order the patient paid in the booking app for an exam at another clinic (the server knows the terminal's clinic by its certificate, else the registry).",
    remedy: 'Nothing was changed and the order stays paid. Send the patient to the clinic the order names (the booking app shows it); a terminal in no known clinic is registered first (tally server registry, or the registry page).',
  },
  INSURANCE_SETTLEMENT_UNRESOLVED: {
    cause: 'An insurance order has stayed settling past its age limit (default 30 min after it was created) and the platform cannot be asked whether it holds a settlement under the order\'s idempotency key (down, timing out). Only the platform knows whether the patient was charged.',
    remedy: 'The server raised the alert insurance-settlement-unresolved (once per order) and keeps asking at every sweep: the order ends settled or failed by itself once the platform answers. Bring the platform back, or check the order (key ORDER:settle in the log event insurance.settlement-unresolved) with the platform\'s operator.',
  },
  INSURANCE_SETTLEMENT_INTERRUPTED: {
    cause: 'A service order paid from the booking app was cut off (the server stopped or crashed) after it was made and before its settlement was sent to the platform, so the platform was never asked to settle it.',
    remedy: 'Nothing was charged. The sweep failed the order once it was past the age limit (log event insurance.service-order-interrupted); the patient pays it again from the booking app.',
  },
  INSURANCE_SERVICE_ORDER_REDEEMED: {
    cause: 'The code of a paid service order was redeemed before at another terminal: an order pays one use, at the first terminal that redeems it.',
    remedy: 'Nothing was charged again. If the patient did not have the exam, look the order up (its terminal is in the server log, event insurance.service-order-redeemed): a use that failed there was released and the settlement reversed.',
  },
  BAD_TLV: {
    cause: 'Bytes in tag-length-value form (a card record, a ledger entry) are truncated, overlong or carry a length out of range.',
    remedy: 'Nothing is taken from them. The error names the bad field; a card showing it is replaced, a file showing it is damaged.',
  },
  BAD_FRAME: {
    cause: 'A frame on the serial line to the terminal board failed its start byte, length or checksum.',
    remedy: 'The link drops it and resynchronises; if it keeps happening check the cable, the baud rate and the board firmware version.',
  },
  BAD_FIRMWARE_PAYLOAD: {
    cause: "A sound frame from the terminal board carried a payload this version cannot read (a wrong field, or a newer board firmware).",
    remedy: 'The message is refused with a NAK. Match the board firmware to the daemon version (firmware-protocol/serial-protocol.md).',
  },
  BAD_LEDGER_ENTRY: {
    cause: 'A ledger entry does not decode: its bytes were altered, cut short or written by an incompatible version.',
    remedy: 'Run tally ledger verify to see the first bad seq; the entry is not trusted and the ledger is reported broken from there.',
  },
  BAD_FCI: {
    cause: "The card's answer to SELECT (its life cycle, chip id and profile) is malformed.",
    remedy: 'Treat the card as unknown: clean its contacts and try again, or replace it.',
  },
  BAD_REGISTRY_EXPORT: {
    cause: "An issuing station's registry export is malformed or not signed as the format requires.",
    remedy: 'Nothing is imported. Export again from the station (tally issue export) and import the new file.',
  },
  BAD_WALLET_QR: {
    cause: "The code read is not a personal wallet QR code (firmware-protocol/wallet-qr.md): another code, a voucher's, or damaged.",
    remedy: "Scan the code on the person's wallet page (My vouchers), not a voucher's; nothing was issued.",
  },
  WALLET_QR_FORGED: {
    cause: "The personal QR code's signature does not verify: it was altered or made by someone else.",
    remedy: 'Nothing was issued. Ask the person to open the wallet page from this server and show its code; report repeated cases.',
  },
  WALLET_QR_EXPIRED: {
    cause: 'The personal QR code is older than its lifetime (two minutes), or dated ahead of the clock by more than 30 s.',
    remedy: "Ask the person to refresh the wallet page and show the new code; check the server's clock if fresh codes fail too.",
  },
  WALLET_QR_UNKNOWN_KEY: {
    cause: "The personal QR code is signed with a key the checker does not hold: at the back office not its own (another server's, or an old key); at a terminal not a voucher key of its trust list.",
    remedy: "Ask the person to open this server's wallet page; after a new voucher key, wallets show codes signed with it.",
  },
  GW_FRAMING: {
    cause: 'A HIS connection sent bytes outside an MLLP frame (0x0B ... 0x1C 0x0D): a client without MLLP, a proxy that strips the framing, or a probe.',
    remedy: 'Configure the HIS interface engine for MLLP; tally gateway archive query --verdict refused --code GW_FRAMING shows what arrived.',
  },
  GW_OVERSIZED: {
    cause: "A message larger than its type's declared limit (or an MLLP frame larger than the listener's), refused before it was parsed.",
    remedy: 'Split the message or ask the investor to raise the declared limit; the HIS got an AR ACK naming the limit.',
  },
  GW_MALFORMED: {
    cause: 'The HL7 message does not parse: no MSH, bad separators, a bad segment name, an unknown escape sequence, or JSON that is not JSON.',
    remedy: 'Fix the sending interface; the AR ACK and the archive entry give the position of the first fault.',
  },
  GW_NOT_ALLOWED: {
    cause: "The message type is not on the gateway's allow list (src/codecs/gateway/declared.ts): deny by default.",
    remedy: 'Send only the declared types (ADT^A04/A05, ORM^O01, OMG^O19, DFT^P03); a new type needs a declaration with its schema and limits.',
  },
  GW_WRONG_DIRECTION: {
    cause: 'A declared type arrived from the side it may not come from (for example a hospital-bound type published on the payment side).',
    remedy: 'Check which side publishes this type; the declaration says its only direction.',
  },
  GW_BAD_FIELD: {
    cause: 'A declared type with a field missing or out of its schema (patient id, department code, date, name characters, amount).',
    remedy: 'The AE ACK and the archive name the field; correct it in the HIS and send again.',
  },
  GW_RATE_LIMITED: {
    cause: "More messages of this type than its declared rate and burst: a HIS flooding the gateway or a replay of a backlog too fast.",
    remedy: 'Send again after a pause (the AR ACK says so); a steady rate above the limit needs a higher declared rate.',
  },
  GW_BAD_SIGNATURE: {
    cause: "A signed payload (a terminal's ledger report, a settlement voucher, a signed deny list) whose certificate does not chain to the investor root or whose entries' signatures do not verify.",
    remedy: "Check the terminal's certificate and ledger (tally ledger verify); forged reports are kept in the archive as evidence.",
  },
  GW_DUPLICATE: {
    cause: 'A message with a sending application, facility and control id that already passed: the HIS sent it again (often after a lost ACK or a gateway restart).',
    remedy: 'Nothing to do: it is acknowledged again with AA and not passed twice.',
  },
  GW_ENCODING: {
    cause: 'The message is not valid UTF-8, or holds control characters (NUL, escape, C1) outside the segment separators.',
    remedy: 'Set the HIS interface to UTF-8 (MSH-18 UNICODE UTF-8) and strip control characters.',
  },
  GW_ARCHIVE_FAULT: {
    cause: "The gateway cannot write its archive (disk full, database fault): it fails closed and passes nothing it cannot keep.",
    remedy: 'Free disk space or repair the archive file; the HIS resends what got AR.',
  },
  GW_DEAD_LETTER: {
    cause: "A department's queue got no acknowledgement for a delivery after every retry: the department's terminal is off or not subscribed.",
    remedy: 'Bring the department terminal online; tally gateway dlq lists the letters and tally gateway dlq --requeue sends them again.',
  },
  GW_ARCHIVE_BROKEN: {
    cause: 'The archive hash chain does not verify: a row was altered, removed or reordered outside the gateway.',
    remedy: 'Keep the file as evidence and compare it with a backup; tally gateway archive verify names the first bad row.',
  },
  BAD_SIGNED_DENYLIST: {
    cause: 'A signed deny list (firmware-protocol/gateway-signed.md) that does not parse, whose server key the investor root does not certify, or whose body its key did not sign.',
    remedy: 'Sign the list again with the certified server key (the server that made it has the certificate); altered lists are kept in the gateway archive as evidence.',
  },
  GW_STALE_SIGNED: {
    cause: "A signed message from the payment side that expired (a settlement voucher past its expiry) or a deny list with a version not above the one that already passed for that terminal.",
    remedy: 'Nothing to do for a replay; otherwise issue a new voucher or a newer deny list.',
  },
  GW_DIODE_INCOMPLETE: {
    cause: "A message sent over the one-way link in fragments did not arrive whole: both copies of at least one fragment were lost (a full receive buffer, a lossy link) before the reassembly timeout; the log and the receiver's archive name the seq and the missing fragment indexes.",
    remedy: "Nothing can be asked again over a diode: the message is in the gateway's own archive (tally gateway archive query --db ... on the hospital side), re-send it from there or from the HIS. If it recurs, raise the receiver's socket buffer, lower --fragment-bytes, or check the link for loss.",
  },
  GW_DIODE_FRAGMENT: {
    cause: 'A fragment on the one-way link disagrees with the others of its message (count, length, digest or bytes): a corrupted datagram, or two senders using the same gateway id.',
    remedy: 'Check that only one gateway sends with this --id to this receiver; the message completes from its other copy, or is reported GW_DIODE_INCOMPLETE.',
  },
  USAGE: {
    cause: 'A command line option is missing or wrong.',
    remedy: 'Run the command with --help and correct the options.',
  },
  CONFIG: {
    cause: 'The configuration file or a TALLY_* variable is wrong; the message lists every wrong field. The daemon exits 78 and systemd does not restart it.',
    remedy: 'Fix the fields listed; tally terminal run --settings lists every setting and --print-config shows what was resolved.',
  },
  BAD_INPUT: {
    cause: 'A request named a field with a value outside its schema (the answer names the field).',
    remedy: 'Correct that field and send the request again; nothing was written.',
  },
  INTERNAL: {
    cause: 'A software fault that should not happen.',
    remedy: 'Report it with the log (journalctl -u tallystick-terminal) and the version from tally terminal status.',
  },
};

const cell = (text: string): string => text.replace(/\|/g, '\\|');

/** The whole of docs/troubleshooting.md */
export function troubleshootingMarkdown(): string {
  const rows = (Object.keys(ErrorCodes) as ErrorName[]).map((name) => {
    const code = ErrorCodes[name];
    const advice = TROUBLESHOOTING[name];
    return `| \`${name}\` | ${code.code} | ${cell(code.en)}<br>${cell(code.zh)} | ${cell(advice.cause)} | ${cell(advice.remedy)} |`;
  });
  return [
    '# Troubleshooting: every error code',
    '',
    '<!-- generated by scripts/troubleshooting.ts from src/errors.ts; test/cli/troubleshooting.test.ts keeps it current (UPDATE_DOCS=1 rewrites it) -->',
    '',
    'The terminal display, the `tally` tools and the log show an error as its',
    'operator message and its code, e.g. `Card refused: card already used [ALREADY_USED 1008]`.',
    'Codes are grouped: 1xxx refusals at a swipe, 2xxx the card and its applet, 3xxx the',
    'issuing station, 4xxx terminal state and storage, 5xxx reader and transport, 6xxx',
    'sync and server, 9xxx usage and configuration.',
    '',
    '| code | number | operator message (English / 中文) | likely cause | remedy |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
