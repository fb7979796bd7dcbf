/*
 * tallystick serial firmware protocol: frame codec (reference, C99).
 * See ../serial-protocol.md. No heap, no globals, no libc beyond memcpy/memmove;
 * one decoder holds one frame buffer (519 bytes).
 *
 *   SOF 0xA5 | LEN u16 BE | SEQ | CMD | PAYLOAD[LEN] | CRC-16/CCITT-FALSE BE
 *   CRC over LEN..PAYLOAD.
 */
#ifndef TALLY_FRAME_H
#define TALLY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_SOF 0xA5u
#define TALLY_MAX_PAYLOAD 512u
#define TALLY_HEADER_LEN 5u
#define TALLY_CRC_LEN 2u
#define TALLY_FRAME_OVERHEAD (TALLY_HEADER_LEN + TALLY_CRC_LEN)
#define TALLY_MAX_FRAME (TALLY_MAX_PAYLOAD + TALLY_FRAME_OVERHEAD)
#define TALLY_CRC16_INIT 0xFFFFu

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout), continuing from crc */
uint16_t tally_crc16(const uint8_t *data, size_t len, uint16_t crc);

/* Writes one frame into out; returns its length, or 0 if len > TALLY_MAX_PAYLOAD or out is too small */
size_t tally_frame_encode(uint8_t seq, uint8_t cmd, const uint8_t *payload, uint16_t len, uint8_t *out, size_t out_size);

typedef struct {
    uint8_t seq;
    uint8_t cmd;
    uint16_t len;
    const uint8_t *payload; /* points into the decoder's buffer; valid during the callback only */
} tally_frame;

typedef enum {
    TALLY_DISCARD_NO_START = 1, /* bytes before a start byte */
    TALLY_DISCARD_BAD_LENGTH = 2, /* LEN above TALLY_MAX_PAYLOAD */
    TALLY_DISCARD_BAD_CRC = 3, /* a complete frame whose CRC did not match: NAK it (reason 1) */
    TALLY_DISCARD_STALE = 4 /* a partial frame dropped by tally_decoder_expire */
} tally_discard_reason;

typedef struct {
    /* called for each good frame */
    void (*on_frame)(void *ctx, const tally_frame *frame);
    /* called for each run of dropped bytes; may be NULL */
    void (*on_discard)(void *ctx, tally_discard_reason reason, size_t count);
    void *ctx;
} tally_decoder_callbacks;

typedef struct {
    uint8_t buf[TALLY_MAX_FRAME];
    uint16_t filled;
} tally_decoder;

void tally_decoder_init(tally_decoder *d);

/*
 * Feeds received bytes (any split, e.g. one byte from a UART interrupt).
 * Never fails: bytes that are not part of a good frame are reported as
 * discarded, and decoding resumes at the next start byte after the one that
 * failed, so a good frame behind a corrupt header is still found.
 */
void tally_decoder_feed(tally_decoder *d, const uint8_t *data, size_t len, const tally_decoder_callbacks *cb);

/* Drops a partial frame after the line went quiet (inter-byte timeout); rescans what follows its start byte */
void tally_decoder_expire(tally_decoder *d, const tally_decoder_callbacks *cb);

#endif
