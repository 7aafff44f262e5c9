#include "base/id.h"

#include "base/err.h"
#include "base/rand.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void id_new(kith_id_t *id, int64_t ms)
{
    uint64_t t = (uint64_t)ms;
    for (int i = 5; i >= 0; i--) {
        id->b[i] = (uint8_t)t;
        t >>= 8;
    }
    rand_bytes(id->b + 6, ID_LEN - 6);
}

void id_encode(const kith_id_t *id, char *out)
{
    /* 128 bits in 26 digits: the first digit carries the top 3 bits (2 pad bits). */
    unsigned acc = 0;
    int bits = 2; /* two leading zero pad bits */
    int o = 0;
    for (int i = 0; i < ID_LEN; i++) {
        acc = (acc << 8) | id->b[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = crockford[(acc >> bits) & 31];
        }
    }
    out[o] = '\0';
}

static int crockford_value(char c)
{
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    if (c == 'I' || c == 'L') return 1;
    if (c == 'O') return 0;
    for (int i = 0; i < 32; i++)
        if (crockford[i] == c) return i;
    return -1;
}

int id_decode(const char *s, size_t len, kith_id_t *id)
{
    if (len != ID_TEXT_LEN) return err_set(KITH_EINVAL, "an id is 26 characters");
    unsigned acc = 0;
    int bits = 0, o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = crockford_value(s[i]);
        if (v < 0) return err_set(KITH_EINVAL, "an id uses Crockford base32 characters");
        if (i == 0) {
            if (v > 7) return err_set(KITH_EINVAL, "id out of range");
            acc = (unsigned)v;
            bits = 3;
            continue;
        }
        acc = (acc << 5) | (unsigned)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            id->b[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o == ID_LEN ? 0 : err_set(KITH_EINVAL, "malformed id");
}

int64_t id_time_ms(const kith_id_t *id)
{
    uint64_t t = 0;
    for (int i = 0; i < 6; i++)
        t = (t << 8) | id->b[i];
    return (int64_t)t;
}
