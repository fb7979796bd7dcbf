/*
 * Test driver for the reference frame codec. Reads vector lines on stdin
 * (test/firmware/cCodec.test.ts writes them from the JSON files in firmware-protocol/vectors):
 *
 *   C <hex> <crc>                        CRC of the bytes equals crc (decimal)
 *   E <seq> <cmd> <payload-hex> <hex>    encoding gives hex; decoding hex gives seq, cmd, payload
 *   I <hex>                              decoding yields no frame
 *   S <chunk,chunk,...> <frame,frame,...|-> <discarded>   streaming decode of the chunks
 *
 * An empty hex field is written as "-". Prints "ok <n>" or "FAIL ..." lines; exit status 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_frame.h"

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
        } else {
            check(0, "unknown line", copy);
        }
    }
    printf("%s %d checks, %d failures\n", failures ? "FAIL" : "ok", checks, failures);
    return failures ? 1 : 0;
}
