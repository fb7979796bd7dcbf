/*
 * tallystick serial firmware protocol 2: the relay board's chain-head witness
 * (reference, C99). See ../serial-protocol.md section 6.5.
 *
 * The board keeps the ledger's head (seq and the first 8 bytes of the head
 * entry's SHA-256) in non-volatile memory. RELAY_ENABLE_HEAD carries the new
 * head; the board stores it and closes the relay only when its seq is above
 * the held one, otherwise it answers STALE_HEAD and the relay stays open.
 *
 * NVM: two 20-byte slots written alternately ("TH", generation u32, seq u32,
 * hash 8, CRC-16/CCITT-FALSE of the 18 bytes before it); the valid slot with
 * the higher generation holds the head, so a power cut during a write leaves
 * the previous head. No heap, no globals.
 */
#ifndef TALLY_HEAD_H
#define TALLY_HEAD_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_CMD_GET_HEAD 0x42u
#define TALLY_CMD_RELAY_ENABLE_HEAD 0x43u
#define TALLY_CMD_GET_SESSION 0x44u
#define TALLY_SESSION_LEN 9u /* GET_SESSION response: state u8, useSeq u32, elapsedMs u32 */
#define TALLY_SESSION_IDLE 0u
#define TALLY_SESSION_ENABLED 1u
#define TALLY_SESSION_RUNNING 2u
#define TALLY_HEAD_HASH_LEN 8u
#define TALLY_HEAD_LEN (4u + TALLY_HEAD_HASH_LEN)              /* GET_HEAD response */
#define TALLY_ENABLE_HEAD_LEN (8u + TALLY_HEAD_LEN)            /* RELAY_ENABLE_HEAD request */
#define TALLY_ENABLE_HEAD_RESULT_LEN (1u + TALLY_HEAD_LEN)     /* RELAY_ENABLE_HEAD response */
#define TALLY_HEAD_RECORD_LEN 20u
#define TALLY_HEAD_IMAGE_LEN (2u * TALLY_HEAD_RECORD_LEN)

#define TALLY_HEAD_CLOSED 0u
#define TALLY_HEAD_STALE 1u

typedef struct {
    uint32_t seq; /* 0 with a zero hash: no head held */
    uint8_t hash[TALLY_HEAD_HASH_LEN];
} tally_head;

/* 1 when the proposed head may replace the held one (its seq is above), else 0 */
int tally_head_accepts(const tally_head *held, const tally_head *proposed);

/* GET_HEAD response payload; returns TALLY_HEAD_LEN */
size_t tally_head_encode(const tally_head *head, uint8_t out[TALLY_HEAD_LEN]);

/* RELAY_ENABLE_HEAD request: 0 on success, -1 when the payload is not exactly 20 bytes (NAK bad-payload) */
int tally_enable_head_parse(const uint8_t *payload, size_t len, uint32_t *use_seq, uint32_t *max_ms, tally_head *head);

/* RELAY_ENABLE_HEAD response payload; returns TALLY_ENABLE_HEAD_RESULT_LEN */
size_t tally_enable_head_result_encode(uint8_t status, const tally_head *held, uint8_t out[TALLY_ENABLE_HEAD_RESULT_LEN]);

/* GET_SESSION response payload (serial-protocol.md 6.6); idle sends use_seq 0 and elapsed_ms 0. Returns TALLY_SESSION_LEN */
size_t tally_session_encode(uint8_t state, uint32_t use_seq, uint32_t elapsed_ms, uint8_t out[TALLY_SESSION_LEN]);

/* One NVM slot */
void tally_head_record_encode(uint32_t generation, const tally_head *head, uint8_t out[TALLY_HEAD_RECORD_LEN]);
/* 0 and the record when the slot is valid; -1 when blank, torn or corrupt */
int tally_head_record_parse(const uint8_t slot[TALLY_HEAD_RECORD_LEN], uint32_t *generation, tally_head *head);

/* The head the two-slot image holds (none valid: seq 0, zero hash, generation 0) */
void tally_head_image_read(const uint8_t image[TALLY_HEAD_IMAGE_LEN], uint32_t *generation, tally_head *head);

/*
 * Stores a new head: writes the slot that does not hold the current record,
 * with generation + 1. Returns the slot written (0 or 1). On the board, write
 * only that slot's 20 bytes to NVM, and close the relay only after the write
 * has completed.
 */
int tally_head_image_write(uint8_t image[TALLY_HEAD_IMAGE_LEN], const tally_head *head);

#endif
