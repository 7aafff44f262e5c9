/*
 * store_key: order-preserving encodings, so that memcmp order of encoded keys
 * is the natural order of the values. Index keys and filter comparisons both
 * use them, so a filter means the same with or without an index.
 *
 *   int, datetime (µs), date (days): 8 bytes, big-endian, sign bit flipped
 *   money (1/10000 units): 15 integer digits need up to 10^19 units, more than
 *       an int64 holds: a sign byte (0 negative, 1 otherwise), then the
 *       magnitude as 8 bytes big-endian, complemented when negative
 *   number: IEEE-754 bits, all flipped when negative, sign flipped otherwise
 *   bool: one byte; ref: the 16 id bytes
 *   string, text, enum, phone: the UTF-8 bytes (byte order = code point order)
 *   email: ASCII-lower-cased bytes (addresses compare case-insensitively)
 */
#include "store/store_int.h"

#include "base/timeutil.h"

#include <string.h>

void store_key_u64(buf_t *out, uint64_t v)
{
    buf_add_u64be(out, v);
}

void store_key_i64(buf_t *out, int64_t v)
{
    buf_add_u64be(out, (uint64_t)v ^ (1ull << 63));
}

static void key_double(buf_t *out, double d)
{
    if (d == 0) d = 0; /* -0.0 and 0.0 are one value */
    uint64_t bits;
    memcpy(&bits, &d, 8);
    bits = (bits & (1ull << 63)) ? ~bits : bits | (1ull << 63);
    buf_add_u64be(out, bits);
}

/* The amount in 1/10000 units as a sign and a magnitude (zero is never negative). */
static int money_units(const char *s, size_t n, int *neg, uint64_t *mag)
{
    uint64_t ip = 0, fp = 0;
    size_t i = 0;
    int fd = 0;
    *neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) *neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (ip > (UINT64_MAX / 10000 - 9) / 10) return -1; /* beyond what we store */
        ip = ip * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9' && fd < 4; i++, fd++)
            fp = fp * 10 + (uint64_t)(s[i] - '0');
    if (i != n) return -1;
    for (; fd < 4; fd++)
        fp *= 10;
    *mag = ip * 10000 + fp;
    if (*mag == 0) *neg = 0;
    return 0;
}

static void key_string(buf_t *out, const char *s, size_t n, int truncate, int fold)
{
    if (truncate && n > IKEY_VALUE_MAX) n = IKEY_VALUE_MAX;
    if (!fold) {
        buf_add(out, s, n);
        return;
    }
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        out->p[out->len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out->p[out->len] = '\0';
}

int store_key_encode(int type, const json_t *v, int truncate, int fold, buf_t *out)
{
    switch (type) {
    case ST_STRING:
    case ST_TEXT:
    case ST_ENUM:
    case ST_PHONE:
    case ST_EMAIL:
        if (!json_is_string(v)) break;
        key_string(out, json_string_value(v), json_string_length(v), truncate,
                   fold || type == ST_EMAIL);
        return 0;
    case ST_INT:
        if (!json_is_integer(v)) break;
        store_key_i64(out, json_integer_value(v));
        return 0;
    case ST_NUMBER:
        if (!json_is_number(v)) break;
        key_double(out, json_number_value(v));
        return 0;
    case ST_BOOL:
        if (!json_is_boolean(v)) break;
        buf_addc(out, json_is_true(v) ? 1 : 0);
        return 0;
    case ST_DATETIME: {
        int64_t us;
        if (!json_is_string(v) ||
            time_parse_rfc3339(json_string_value(v), json_string_length(v), &us))
            break;
        store_key_i64(out, us);
        return 0;
    }
    case ST_DATE: {
        int32_t days;
        if (!json_is_string(v) ||
            time_parse_date(json_string_value(v), json_string_length(v), &days))
            break;
        store_key_i64(out, days);
        return 0;
    }
    case ST_MONEY: {
        int neg;
        uint64_t mag;
        if (!json_is_string(v) ||
            money_units(json_string_value(v), json_string_length(v), &neg, &mag))
            break;
        buf_addc(out, neg ? 0 : 1);
        buf_add_u64be(out, neg ? ~mag : mag);
        return 0;
    }
    case ST_REF: {
        kith_id_t id;
        if (!json_is_string(v) || id_decode(json_string_value(v), json_string_length(v), &id))
            break;
        buf_add(out, id.b, ID_LEN);
        return 0;
    }
    default:
        break;
    }
    return err_set(KITH_EINVAL, "value does not fit type %s", store_type_name(type));
}
