/* tallystick serial firmware protocol: frame codec (reference, C99). See tally_frame.h. */
#include "tally_frame.h"

#include <string.h>

uint16_t tally_crc16(const uint8_t *data, size_t len, uint16_t crc)
{
    /* bitwise: 8 shifts a byte keeps flash small; swap in a 512-byte table if cycles matter more */
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

size_t tally_frame_encode(uint8_t seq, uint8_t cmd, const uint8_t *payload, uint16_t len, uint8_t *out, size_t out_size)
{
    uint16_t crc;
    size_t total = (size_t)len + TALLY_FRAME_OVERHEAD;
    if (len > TALLY_MAX_PAYLOAD || out_size < total) return 0;
    out[0] = TALLY_SOF;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)(len & 0xFFu);
    out[3] = seq;
    out[4] = cmd;
    if (len > 0) memcpy(out + TALLY_HEADER_LEN, payload, len);
    crc = tally_crc16(out + 1, (size_t)len + 4u, TALLY_CRC16_INIT);
    out[TALLY_HEADER_LEN + len] = (uint8_t)(crc >> 8);
    out[TALLY_HEADER_LEN + len + 1u] = (uint8_t)(crc & 0xFFu);
    return total;
}

void tally_decoder_init(tally_decoder *d)
{
    d->filled = 0;
}

static void discard(tally_decoder_callbacks const *cb, tally_discard_reason reason, size_t count)
{
    if (cb->on_discard != NULL && count > 0) cb->on_discard(cb->ctx, reason, count);
}

static void consume(tally_decoder *d, uint16_t count)
{
    memmove(d->buf, d->buf + count, (size_t)(d->filled - count));
    d->filled = (uint16_t)(d->filled - count);
}

/* drops count bytes and everything up to the next start byte */
static void shift_to_next_start(tally_decoder *d, uint16_t count, tally_discard_reason reason, const tally_decoder_callbacks *cb)
{
    uint16_t end = count;
    while (end < d->filled && d->buf[end] != TALLY_SOF) end++;
    discard(cb, reason, end);
    consume(d, end);
}

static void drain(tally_decoder *d, const tally_decoder_callbacks *cb)
{
    for (;;) {
        uint16_t len, total, crc;
        if (d->filled == 0) return;
        if (d->buf[0] != TALLY_SOF) {
            shift_to_next_start(d, 1, TALLY_DISCARD_NO_START, cb);
            continue;
        }
        if (d->filled < 3) return;
        len = (uint16_t)(((uint16_t)d->buf[1] << 8) | d->buf[2]);
        if (len > TALLY_MAX_PAYLOAD) {
            shift_to_next_start(d, 1, TALLY_DISCARD_BAD_LENGTH, cb);
            continue;
        }
        total = (uint16_t)(len + TALLY_FRAME_OVERHEAD);
        if (d->filled < total) return;
        crc = tally_crc16(d->buf + 1, (size_t)len + 4u, TALLY_CRC16_INIT);
        if ((uint8_t)(crc >> 8) != d->buf[TALLY_HEADER_LEN + len] || (uint8_t)(crc & 0xFFu) != d->buf[TALLY_HEADER_LEN + len + 1u]) {
            shift_to_next_start(d, 1, TALLY_DISCARD_BAD_CRC, cb);
            continue;
        }
        {
            tally_frame frame;
            frame.seq = d->buf[3];
            frame.cmd = d->buf[4];
            frame.len = len;
            frame.payload = d->buf + TALLY_HEADER_LEN;
            cb->on_frame(cb->ctx, &frame);
        }
        consume(d, total);
    }
}

void tally_decoder_feed(tally_decoder *d, const uint8_t *data, size_t len, const tally_decoder_callbacks *cb)
{
    size_t offset = 0;
    while (offset < len) {
        size_t room, take;
        if (d->filled == 0) {
            size_t start = offset;
            while (start < len && data[start] != TALLY_SOF) start++;
            discard(cb, TALLY_DISCARD_NO_START, start - offset);
            offset = start;
            if (offset == len) break;
        }
        room = TALLY_MAX_FRAME - d->filled;
        take = len - offset < room ? len - offset : room;
        memcpy(d->buf + d->filled, data + offset, take);
        d->filled = (uint16_t)(d->filled + take);
        offset += take;
        drain(d, cb);
    }
}

void tally_decoder_expire(tally_decoder *d, const tally_decoder_callbacks *cb)
{
    uint8_t rest[TALLY_MAX_FRAME];
    uint16_t count;
    if (d->filled == 0) return;
    discard(cb, TALLY_DISCARD_STALE, 1);
    count = (uint16_t)(d->filled - 1u);
    memcpy(rest, d->buf + 1, count);
    d->filled = 0;
    tally_decoder_feed(d, rest, count, cb);
    if (d->filled > 0) {
        discard(cb, TALLY_DISCARD_STALE, d->filled);
        d->filled = 0;
    }
}
