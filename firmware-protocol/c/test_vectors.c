/*
 * Test driver for the reference frame codec. Reads vector lines on stdin
 * (test/firmware/cCodec.test.ts writes them from the JSON files in firmware-protocol/vectors):
 *
 *   C <hex> <crc>                        CRC of the bytes equals crc (decimal)
 *   E <seq> <cmd> <payload-hex> <hex>    encoding gives hex; decoding hex gives seq, cmd, payload
 *   I <hex>                              decoding yields no frame
 *   S <chunk,chunk,...> <frame,frame,...|-> <discarded>   streaming decode of the chunks
 *
 * and the chain-head witness of protocol 2 (tally_head.h; vectors/relay.json and vectors/head.json):
 *
 *   G <seq> <hash> <payload>                 GET_HEAD response encodes to payload
 *   P <payload> <useSeq> <maxMs> <seq> <hash>  RELAY_ENABLE_HEAD request parses to the fields
 *   Q <status> <seq> <hash> <payload>        RELAY_ENABLE_HEAD response encodes to payload
 *   X <state> <useSeq> <elapsedMs> <payload> GET_SESSION response encodes to payload
 *   A <heldSeq> <proposedSeq> <0|1>          the acceptance rule
 *   R <generation> <seq> <hash> <record>     one NVM slot, both ways
 *   M <image> <generation> <seq> <hash>      the head a two-slot image holds
 *   W <before> <seq> <hash> <after> <slot>   storing a head in an image
 *
 * An empty hex field is written as "-". Prints "ok <n>" or "FAIL ..." lines; exit status 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_frame.h"
#include "tally_head.h"

#define MAX_LINE 16384
#define MAX_BYTES 4096
#define MAX_FRAMES 16

static int failures = 0;
static int checks = 0;

static size_t parse_hex(const char *hex, uint8_t *out, size_t max)
{
    size_t n = 0;
    if (strcmp(hex, "-") == 0) return 0;
    while (hex[0] && hex[1] && n < max) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

typedef struct {
    uint8_t frames[MAX_FRAMES][TALLY_MAX_FRAME];
    size_t lengths[MAX_FRAMES];
    int count;
    size_t discarded;
} collector;

static void on_frame(void *ctx, const tally_frame *frame)
{
    collector *c = (collector *)ctx;
    if (c->count < MAX_FRAMES) {
        c->lengths[c->count] = tally_frame_encode(frame->seq, frame->cmd, frame->payload, frame->len, c->frames[c->count], TALLY_MAX_FRAME);
        c->count++;
    }
}

static void on_discard(void *ctx, tally_discard_reason reason, size_t count)
{
    (void)reason;
    ((collector *)ctx)->discarded += count;
}

static void check(int ok, const char *what, const char *line)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: %s\n", what, line);
    }
}

static unsigned long next_ul(void)
{
    return strtoul(strtok(NULL, " "), NULL, 10);
}

/* the next two fields: seq and hash */
static void next_head(tally_head *head)
{
    uint8_t hash[MAX_BYTES];
    head->seq = (uint32_t)next_ul();
    memset(head->hash, 0, sizeof head->hash);
    memcpy(head->hash, hash, parse_hex(strtok(NULL, " "), hash, TALLY_HEAD_HASH_LEN));
}

static int heads_equal(const tally_head *a, const tally_head *b)
{
    return a->seq == b->seq && memcmp(a->hash, b->hash, TALLY_HEAD_HASH_LEN) == 0;
}

static collector *decode(const uint8_t *bytes, size_t len)
{
    static collector c;
    tally_decoder d;
    tally_decoder_callbacks cb;
    memset(&c, 0, sizeof c);
    cb.on_frame = on_frame;
    cb.on_discard = on_discard;
    cb.ctx = &c;
    tally_decoder_init(&d);
    tally_decoder_feed(&d, bytes, len, &cb);
    return &c;
}

int main(void)
{
    static char line[MAX_LINE];
    static char copy[MAX_LINE];
    static uint8_t a[MAX_BYTES], b[MAX_BYTES], out[MAX_BYTES];
    while (fgets(line, sizeof line, stdin)) {
        char *kind;
        line[strcspn(line, "\r\n")] = 0;
        strcpy(copy, line);
        kind = strtok(line, " ");
        if (kind == NULL) continue;
        if (strcmp(kind, "C") == 0) {
            size_t n = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            unsigned long expected = strtoul(strtok(NULL, " "), NULL, 10);
            check(tally_crc16(a, n, TALLY_CRC16_INIT) == expected, "crc", copy);
        } else if (strcmp(kind, "E") == 0) {
            unsigned seq = (unsigned)strtoul(strtok(NULL, " "), NULL, 10);
            unsigned cmd = (unsigned)strtoul(strtok(NULL, " "), NULL, 10);
            size_t plen = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            size_t flen = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            size_t n = tally_frame_encode((uint8_t)seq, (uint8_t)cmd, a, (uint16_t)plen, out, sizeof out);
            collector *c;
            check(n == flen && memcmp(out, b, n) == 0, "encode", copy);
            c = decode(b, flen);
            check(c->count == 1 && c->discarded == 0 && c->lengths[0] == flen && memcmp(c->frames[0], b, flen) == 0, "decode", copy);
            check(c->count == 1 && c->frames[0][3] == seq && c->frames[0][4] == cmd && memcmp(c->frames[0] + TALLY_HEADER_LEN, a, plen) == 0, "decode fields", copy);
        } else if (strcmp(kind, "I") == 0) {
            size_t n = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            collector *c = decode(a, n);
            check(c->count == 0, "invalid", copy);
        } else if (strcmp(kind, "S") == 0) {
            char *chunks = strtok(NULL, " ");
            char *frames = strtok(NULL, " ");
            size_t expected_discard = (size_t)strtoul(strtok(NULL, " "), NULL, 10);
            static collector c;
            tally_decoder d;
            tally_decoder_callbacks cb;
            char *save = NULL;
            char *piece;
            int i = 0;
            memset(&c, 0, sizeof c);
            cb.on_frame = on_frame;
            cb.on_discard = on_discard;
            cb.ctx = &c;
            tally_decoder_init(&d);
            /* strtok is already walking the line, so split the lists by hand */
            for (piece = chunks; piece && *piece; piece = save) {
                size_t n;
                save = strchr(piece, ',');
                if (save) *save++ = 0;
                n = parse_hex(piece, a, MAX_BYTES);
                tally_decoder_feed(&d, a, n, &cb);
            }
            if (strcmp(frames, "-") != 0) {
                for (piece = frames; piece && *piece; piece = save, i++) {
                    size_t n;
                    save = strchr(piece, ',');
                    if (save) *save++ = 0;
                    n = parse_hex(piece, b, MAX_BYTES);
                    check(i < c.count && c.lengths[i] == n && memcmp(c.frames[i], b, n) == 0, "stream frame", copy);
                }
            }
            check(c.count == i, "stream frame count", copy);
            check(c.discarded == expected_discard, "stream discarded", copy);
            check(d.filled == 0, "stream pending", copy);
        } else if (strcmp(kind, "G") == 0) {
            tally_head h;
            size_t n;
            next_head(&h);
            n = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            check(tally_head_encode(&h, out) == n && memcmp(out, b, n) == 0, "head encode", copy);
        } else if (strcmp(kind, "P") == 0) {
            size_t n = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            uint32_t use_seq = 0, max_ms = 0;
            tally_head h, expected;
            unsigned long want_use = next_ul(), want_max = next_ul();
            next_head(&expected);
            check(tally_enable_head_parse(a, n, &use_seq, &max_ms, &h) == 0 && use_seq == want_use && max_ms == want_max && heads_equal(&h, &expected), "enable head parse", copy);
            check(tally_enable_head_parse(a, n - 1, &use_seq, &max_ms, &h) == -1, "enable head short", copy);
        } else if (strcmp(kind, "Q") == 0) {
            unsigned status = (unsigned)next_ul();
            tally_head h;
            size_t n;
            next_head(&h);
            n = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            check(tally_enable_head_result_encode((uint8_t)status, &h, out) == n && memcmp(out, b, n) == 0, "enable head result", copy);
        } else if (strcmp(kind, "X") == 0) {
            unsigned long state = next_ul(), use_seq = next_ul(), elapsed_ms = next_ul();
            size_t n = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            check(tally_session_encode((uint8_t)state, (uint32_t)use_seq, (uint32_t)elapsed_ms, out) == n && memcmp(out, b, n) == 0, "session encode", copy);
        } else if (strcmp(kind, "A") == 0) {
            tally_head held, proposed;
            int want;
            memset(&held, 0, sizeof held);
            memset(&proposed, 0, sizeof proposed);
            held.seq = (uint32_t)next_ul();
            proposed.seq = (uint32_t)next_ul();
            want = (int)next_ul();
            check(tally_head_accepts(&held, &proposed) == want, "accept rule", copy);
        } else if (strcmp(kind, "R") == 0) {
            uint32_t generation = (uint32_t)next_ul(), got_generation = 0;
            tally_head h, got;
            size_t n;
            next_head(&h);
            n = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            tally_head_record_encode(generation, &h, out);
            check(n == TALLY_HEAD_RECORD_LEN && memcmp(out, b, n) == 0, "record encode", copy);
            check(tally_head_record_parse(b, &got_generation, &got) == 0 && got_generation == generation && heads_equal(&got, &h), "record parse", copy);
            b[19] ^= 1u;
            check(tally_head_record_parse(b, &got_generation, &got) == -1, "record crc", copy);
        } else if (strcmp(kind, "M") == 0) {
            size_t n = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            uint32_t generation = (uint32_t)next_ul(), got_generation = 1;
            tally_head h, got;
            next_head(&h);
            tally_head_image_read(a, &got_generation, &got);
            check(n == TALLY_HEAD_IMAGE_LEN && got_generation == generation && heads_equal(&got, &h), "image read", copy);
        } else if (strcmp(kind, "W") == 0) {
            size_t n = parse_hex(strtok(NULL, " "), a, MAX_BYTES);
            tally_head h;
            size_t m;
            int slot;
            next_head(&h);
            m = parse_hex(strtok(NULL, " "), b, MAX_BYTES);
            slot = (int)next_ul();
            check(n == TALLY_HEAD_IMAGE_LEN && m == n && tally_head_image_write(a, &h) == slot && memcmp(a, b, n) == 0, "image write", copy);
        } else {
            check(0, "unknown line", copy);
        }
    }
    printf("%s %d checks, %d failures\n", failures ? "FAIL" : "ok", checks, failures);
    return failures ? 1 : 0;
}
