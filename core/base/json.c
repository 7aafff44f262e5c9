#include "base/json.h"

#include "base/codec.h"
#include "base/err.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void json_write_str(buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, len + 2);
    b->p[b->len++] = '"';
    size_t run = 0; /* start of the current run of bytes needing no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* Text from jansson is valid UTF-8, but a detail can quote raw
             * client bytes (a path segment, a parser's "near '...'"): bytes
             * that are not UTF-8 become U+FFFD so the output stays JSON. */
            size_t k = utf8_seq_len((const uint8_t *)s + i, len - i);
            if (k) {
                i += k - 1;
                continue;
            }
            buf_add(b, s + run, i - run);
            run = i + 1;
            buf_adds(b, "\xEF\xBF\xBD");
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_add(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        buf_add(b, esc, n);
    }
    buf_add(b, s + run, len - run);
    buf_addc(b, '"');
}

void json_write_cstr(buf_t *b, const char *s)
{
    json_write_str(b, s, strlen(s));
}

void json_write_int(buf_t *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    buf_add(b, tmp, (size_t)n);
}

void json_write_real(buf_t *b, double v)
{
    char tmp[40];
    int n = 0;
    if (!isfinite(v)) {
        /* JSON has no NaN or infinity; jansson never produces them either. */
        buf_adds(b, "null");
        return;
    }
    /* For normal doubles any decimal of up to 15 digits (DBL_DIG) reads back
     * exactly, so the 15-digit form is already the shortest when it round
     * trips; subnormals have fewer significant bits and may need fewer. */
    for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* Keep it a real when read back (jansson distinguishes 3 from 3.0). */
    if (!strpbrk(tmp, ".eE")) {
        tmp[n++] = '.';
        tmp[n++] = '0';
        tmp[n] = '\0';
    }
    buf_add(b, tmp, (size_t)n);
}

void json_write_value(buf_t *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        buf_addc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first) buf_addc(b, ',');
            first = 0;
            json_write_cstr(b, k);
            buf_addc(b, ':');
            json_write_value(b, x);
        }
        buf_addc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        buf_addc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) buf_addc(b, ',');
            json_write_value(b, json_array_get(v, i));
        }
        buf_addc(b, ']');
        break;
    }
    case JSON_STRING:
        json_write_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        json_write_int(b, json_integer_value(v));
        break;
    case JSON_REAL:
        json_write_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_add(b, "true", 4);
        break;
    case JSON_FALSE:
        buf_add(b, "false", 5);
        break;
    case JSON_NULL:
        buf_add(b, "null", 4);
        break;
    }
}

char *json_to_str(const json_t *v, size_t *len)
{
    buf_t b = BUF_INIT;
    json_write_value(&b, v);
    return buf_steal(&b, len);
}

int json_depth(const json_t *v)
{
    int max = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int d = json_depth(x);
            if (d > max) max = d;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = json_depth(json_array_get(v, i));
            if (d > max) max = d;
        }
        return max + 1;
    }
    return 1;
}

/* The index just past the string that starts at s[i] (a quote). */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

int json_object_keys(const char *s, size_t len,
                     int (*fn)(void *ctx, const char *key, size_t klen), void *ctx)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i >= len || s[i] != '{') return -1;
    i++;
    int depth = 0, want_key = 1;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t end = skip_string(s, len, i);
            if (depth == 0 && want_key) {
                if (end - i >= 2 && fn(ctx, s + i + 1, end - i - 2)) return 0;
                want_key = 0;
            }
            i = end;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth-- == 0) return 0; /* the object's end */
        } else if (c == ',' && depth == 0) {
            want_key = 1;
        }
        i++;
    }
    return 0;
}

/* Depth of the raw text, checked before parsing so that a hostile document
 * cannot make jansson recurse 2048 levels (its compile-time limit). */
static int json_text_too_deep(const char *s, size_t len)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_DEPTH_MAX) return 1;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

json_t *json_parse(const char *data, size_t len)
{
    /* No raw NUL belongs in JSON text (in strings it must be escaped), and
     * jansson takes one after a top-level number ("123\0") for the end. */
    if (memchr(data, '\0', len)) {
        err_set(KITH_EINVAL, "malformed JSON: a NUL byte at offset %zu",
                (size_t)((const char *)memchr(data, '\0', len) - data));
        return NULL;
    }
    if (json_text_too_deep(data, len)) {
        err_set(KITH_ELIMIT, "JSON nested more than %d levels deep", JSON_DEPTH_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        err_set(KITH_EINVAL, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return NULL;
    }
    return v;
}
