/* The relay board's chain-head witness: see tally_head.h and ../serial-protocol.md section 6.5 */
#include <string.h>

#include "tally_frame.h"
#include "tally_head.h"

static void put_u32(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *in)
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | (uint32_t)in[3];
}

static void put_head(uint8_t *out, const tally_head *head)
{
    put_u32(out, head->seq);
    memcpy(out + 4, head->hash, TALLY_HEAD_HASH_LEN);
}

static void get_head(const uint8_t *in, tally_head *head)
{
    head->seq = get_u32(in);
    memcpy(head->hash, in + 4, TALLY_HEAD_HASH_LEN);
}

int tally_head_accepts(const tally_head *held, const tally_head *proposed)
{
    return proposed->seq > held->seq;
}

size_t tally_head_encode(const tally_head *head, uint8_t out[TALLY_HEAD_LEN])
{
    put_head(out, head);
    return TALLY_HEAD_LEN;
}

size_t tally_session_encode(uint8_t state, uint32_t use_seq, uint32_t elapsed_ms, uint8_t out[TALLY_SESSION_LEN])
{
    if (state == TALLY_SESSION_IDLE) {
        use_seq = 0;
        elapsed_ms = 0;
    }
    out[0] = state;
    put_u32(out + 1, use_seq);
    put_u32(out + 5, elapsed_ms);
    return TALLY_SESSION_LEN;
}

int tally_enable_head_parse(const uint8_t *payload, size_t len, uint32_t *use_seq, uint32_t *max_ms, tally_head *head)
{
    if (len != TALLY_ENABLE_HEAD_LEN) return -1;
    *use_seq = get_u32(payload);
    *max_ms = get_u32(payload + 4);
    get_head(payload + 8, head);
    return 0;
}

size_t tally_enable_head_result_encode(uint8_t status, const tally_head *held, uint8_t out[TALLY_ENABLE_HEAD_RESULT_LEN])
{
    out[0] = status;
    put_head(out + 1, held);
    return TALLY_ENABLE_HEAD_RESULT_LEN;
}

void tally_head_record_encode(uint32_t generation, const tally_head *head, uint8_t out[TALLY_HEAD_RECORD_LEN])
{
    uint16_t crc;
    out[0] = 'T';
    out[1] = 'H';
    put_u32(out + 2, generation);
    put_head(out + 6, head);
    crc = tally_crc16(out, 18, TALLY_CRC16_INIT);
    out[18] = (uint8_t)(crc >> 8);
    out[19] = (uint8_t)crc;
}

int tally_head_record_parse(const uint8_t slot[TALLY_HEAD_RECORD_LEN], uint32_t *generation, tally_head *head)
{
    uint16_t crc;
    if (slot[0] != 'T' || slot[1] != 'H') return -1;
    crc = tally_crc16(slot, 18, TALLY_CRC16_INIT);
    if (slot[18] != (uint8_t)(crc >> 8) || slot[19] != (uint8_t)crc) return -1;
    *generation = get_u32(slot + 2);
    get_head(slot + 6, head);
    return 0;
}

/* Which slot holds the current record: 0, 1, or -1 when neither is valid */
static int current_slot(const uint8_t image[TALLY_HEAD_IMAGE_LEN], uint32_t *generation, tally_head *head)
{
    uint32_t ga = 0, gb = 0;
    tally_head a, b;
    int va = tally_head_record_parse(image, &ga, &a) == 0;
    int vb = tally_head_record_parse(image + TALLY_HEAD_RECORD_LEN, &gb, &b) == 0;
    if (va && (!vb || ga >= gb)) {
        *generation = ga;
        *head = a;
        return 0;
    }
    if (vb) {
        *generation = gb;
        *head = b;
        return 1;
    }
    *generation = 0;
    memset(head, 0, sizeof *head);
    return -1;
}

void tally_head_image_read(const uint8_t image[TALLY_HEAD_IMAGE_LEN], uint32_t *generation, tally_head *head)
{
    (void)current_slot(image, generation, head);
}

int tally_head_image_write(uint8_t image[TALLY_HEAD_IMAGE_LEN], const tally_head *head)
{
    uint32_t generation;
    tally_head current;
    int slot = current_slot(image, &generation, &current) == 0 ? 1 : 0;
    tally_head_record_encode(generation + 1u, head, image + (size_t)slot * TALLY_HEAD_RECORD_LEN);
    return slot;
}
