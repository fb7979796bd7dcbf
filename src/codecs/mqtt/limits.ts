/** Byte and count limits for every MQTT payload. Mosquitto's max_packet_size (config/mosquitto) sits just above MAX_REPORT_BYTES. */
export const MAX_REPORT_BYTES = 256 * 1024;
/** One report carries at most this many ledger entries */
export const MAX_ENTRIES_PER_REPORT = 1000;
/** A ledger entry with an embedded card record is a few hundred bytes; anything past this is not ours */
export const MAX_ENTRY_BYTES = 4096;
export const MAX_CERTIFICATE_BYTES = 2048;
/** JSON control messages (ack, status, heartbeat, config, time, resend, claims, responses) */
export const MAX_JSON_BYTES = 64 * 1024;
/** A full deny list may be long: 256 KiB is about 13,000 card ids */
export const MAX_DENYLIST_BYTES = 256 * 1024;
export const MAX_DENYLIST_ENTRIES = 12_000;
/** Terminal ids become MQTT topic levels and ACL user names: no wildcards, no slashes */
export const TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
/** No message of ours nests deeper than a few levels: deeper JSON is refused before anything walks it (recursion would overflow the stack) */
export const MAX_JSON_DEPTH = 32;
