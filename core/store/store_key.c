/*
 * store_key: order-preserving encodings, so that memcmp order of encoded keys
 * is the natural order of the values. Index keys and filter comparisons both
 * use them, so a filter means the same with or without an index.
 *
 *   int, datetime (µs), date (days), money (1/10000 units): 8 bytes, big-endian,
 *       sign bit flipped
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

static int money_units(const char *s, size_t n, int64_t *out)
{
    int64_t ip = 0, fp = 0;
    size_t i = 0;
    int neg = 0, fd = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) ip = ip * 10 + (s[i] - '0');
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9' && fd < 4; i++, fd++)
            fp = fp * 10 + (s[i] - '0');
    if (i != n) return -1;
    for (; fd < 4; fd++) fp *= 10;
    *out = (ip * 10000 + fp) * (neg ? -1 : 1);
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
        if (!json_is_string(v) || time_parse_date(json_string_value(v), json_string_length(v), &days))
            break;
        store_key_i64(out, days);
        return 0;
    }
    case ST_MONEY: {
        int64_t units;
        if (!json_is_string(v) || money_units(json_string_value(v), json_string_length(v), &units))
            break;
        store_key_i64(out, units);
        return 0;
    }
    case ST_REF: {
        kith_id_t id;
        if (!json_is_string(v) || id_decode(json_string_value(v), json_string_length(v), &id))
            break;
        buf_add(out, id.b, ID_LEN);
        return 0;
    }
    default: break;
    }
    return err_set(KITH_EINVAL, "value does not fit type %s", store_type_name(type));
}
