/*
 * base/id: record IDs. 128 bits: 48-bit Unix milliseconds (big-endian, so IDs
 * sort by creation time) followed by 80 random bits (unguessable). Text form is
 * 26 characters of Crockford base32, upper case ("01JD3K...").
 */
#ifndef KITH_BASE_ID_H
#define KITH_BASE_ID_H

#include <stddef.h>
#include <stdint.h>

#define ID_LEN      16
#define ID_TEXT_LEN 26

typedef struct kith_id {
    uint8_t b[ID_LEN];
} kith_id_t;

/* A new ID for wall-clock time ms (pass time_now_us() / 1000). Any thread. */
void id_new(kith_id_t *id, int64_t ms);

/* Writes the 26 characters and a NUL into out (at least 27 bytes). */
void id_encode(const kith_id_t *id, char *out);

/* Parses 26 base32 characters (case-insensitive; I/L read as 1, O as 0).
 * Returns 0, or KITH_EINVAL with a diagnostic. */
int id_decode(const char *s, size_t len, kith_id_t *id);

/* The creation time in milliseconds encoded in the ID. */
int64_t id_time_ms(const kith_id_t *id);

#endif
