/*
 * store_validate: checks record fields against their collection and returns
 * the canonical form that is stored: fields in schema order, e-mail and phone
 * trimmed, datetimes in UTC, money as a decimal string, ids upper case.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Valid UTF-8 is guaranteed by jansson; we check lengths, shapes and ranges. */

static json_t *trimmed_string(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t a = 0, b = n;
    while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r' || s[a] == '\n'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r' || s[b - 1] == '\n'))
        b--;
    return json_stringn(s + a, b - a);
}

static int email_ok(const char *s, size_t n)
{
    if (n < 3 || n > 254) return 0;
    const char *at = memchr(s, '@', n);
    if (!at || at == s || memchr(at + 1, '@', n - (size_t)(at - s) - 1)) return 0;
    size_t local = (size_t)(at - s), dom = n - local - 1;
    if (local > 64 || dom < 1) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == ',' || c == ';' || c == '<' || c == '>' || c == '(' ||
            c == ')' || c == '[' || c == ']' || c == '\\' || c == '"')
            return 0;
    }
    const char *d = at + 1;
    if (d[0] == '.' || d[dom - 1] == '.' || !memchr(d, '.', dom)) return 0;
    for (size_t i = 1; i < dom; i++)
        if (d[i] == '.' && d[i - 1] == '.') return 0;
    return 1;
}

/* Phones are checked loosely here (digits and the usual separators, including
 * full-width digits); normalising to E.164 is a business rule for plugins. */
static int phone_ok(const char *s, size_t n)
{
    int digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= '0' && c <= '9') {
            digits++;
        } else if (c == '+' || c == ' ' || c == '-' || c == '(' || c == ')' || c == '.' ||
                   c == '/') {
        } else if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBC &&
                   (unsigned char)s[i + 2] >= 0x90 && (unsigned char)s[i + 2] <= 0x99) {
            digits++; /* U+FF10..U+FF19 full-width digits */
            i += 2;
        } else if ((c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBC &&
                    ((unsigned char)s[i + 2] == 0x8B || (unsigned char)s[i + 2] == 0x8D ||
                     (unsigned char)s[i + 2] == 0x88 || (unsigned char)s[i + 2] == 0x89)) ||
                   (c == 0xE3 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                    (unsigned char)s[i + 2] == 0x80)) {
            i += 2; /* full-width + - ( ), ideographic space */
        } else {
            return 0;
        }
    }
    return digits >= 3 && digits <= 20;
}

/* Money: at most 15 integer digits and 4 decimals, kept exact as a string with
 * at least two decimals ("19.90"). */
static json_t *money_canon(const json_t *v, const char **why)
{
    char tmp[64];
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        s = tmp;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || fabs(d) >= 1e15) {
            *why = "amount out of range";
            return NULL;
        }
        /* Shortest text that reads back as d, so 19.99 stays 19.99. */
        buf_t b = BUF_INIT;
        json_write_real(&b, d);
        snprintf(tmp, sizeof tmp, "%s", b.p);
        buf_free(&b);
        if (strpbrk(tmp, "eE")) {
            snprintf(tmp, sizeof tmp, "%.4f", d);
            if (strtod(tmp, NULL) != d) {
                *why = "more than 4 decimal places";
                return NULL;
            }
        }
        s = tmp;
        n = strlen(tmp);
    } else {
        *why = "expected an amount (number or decimal string)";
        return NULL;
    }
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    size_t ip = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t ilen = i - ip;
    size_t fp = i, flen = 0;
    if (i < n && s[i] == '.') {
        fp = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        flen = i - fp;
        if (flen == 0) ilen = ilen ? ilen : 0;
    }
    if (i != n || ilen + flen == 0) {
        *why = "expected a decimal amount such as 1234.50";
        return NULL;
    }
    while (flen > 0 && s[fp + flen - 1] == '0')
        flen--;
    if (flen > 4) {
        *why = "more than 4 decimal places";
        return NULL;
    }
    while (ilen > 1 && s[ip] == '0') {
        ip++;
        ilen--;
    }
    if (ilen > 15) {
        *why = "amount out of range";
        return NULL;
    }
    char out[40];
    size_t o = 0;
    int zero = 1;
    for (size_t k = 0; k < ilen; k++)
        zero &= s[ip + k] == '0';
    for (size_t k = 0; k < flen; k++)
        zero &= s[fp + k] == '0';
    if (neg && !zero) out[o++] = '-';
    if (ilen == 0)
        out[o++] = '0';
    else
        for (size_t k = 0; k < ilen; k++)
            out[o++] = s[ip + k];
    out[o++] = '.';
    for (size_t k = 0; k < flen; k++)
        out[o++] = s[fp + k];
    for (size_t k = flen; k < 2; k++)
        out[o++] = '0';
    return json_stringn(out, o);
}

/* The most bytes a value of type may have in field f: an array's max_length
 * counts its items, and each item has its type's own limit. */
static size_t length_max(const store_field_t *f, int type)
{
    if (f->type != ST_ARRAY) return f->max_length;
    return type == ST_TEXT ? STORE_TEXT_MAX : STORE_STRING_MAX;
}

/* Strings built in code (Lua, plugins) may hold NUL, which JSON text cannot
 * carry unescaped and jansson refuses when reading back: refuse it on write. */
static int has_nul(const json_t *v)
{
    if (json_is_string(v)) return strlen(json_string_value(v)) != json_string_length(v);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_nul(json_array_get(v, i))) return 1;
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (has_nul(x)) return 1;
        }
    }
    return 0;
}

json_t *store_value_canon(const store_field_t *f, int type, const json_t *v, const char **why)
{
    if (has_nul(v)) {
        *why = "contains a NUL character";
        return NULL;
    }
    switch (type) {
    case ST_STRING:
    case ST_TEXT:
        if (!json_is_string(v)) break;
        if (json_string_length(v) > length_max(f, type)) {
            *why = "too long";
            return NULL;
        }
        return json_incref((json_t *)v);
    case ST_ENUM:
        if (!json_is_string(v)) break;
        for (size_t i = 0; i < f->nvalues; i++)
            if (strcmp(f->values[i], json_string_value(v)) == 0) return json_incref((json_t *)v);
        *why = "not one of the allowed values";
        return NULL;
    case ST_EMAIL: {
        if (!json_is_string(v)) break;
        json_t *t = trimmed_string(v);
        if (json_string_length(t) > length_max(f, type) ||
            !email_ok(json_string_value(t), json_string_length(t))) {
            json_decref(t);
            *why = "not a valid e-mail address";
            return NULL;
        }
        return t;
    }
    case ST_PHONE: {
        if (!json_is_string(v)) break;
        json_t *t = trimmed_string(v);
        if (json_string_length(t) > length_max(f, type) ||
            !phone_ok(json_string_value(t), json_string_length(t))) {
            json_decref(t);
            *why = "not a valid phone number";
            return NULL;
        }
        return t;
    }
    case ST_INT:
        if (!json_is_integer(v)) {
            *why = "expected an integer";
            return NULL;
        }
        return json_incref((json_t *)v);
    case ST_NUMBER:
        if (!json_is_number(v)) {
            *why = "expected a number";
            return NULL;
        }
        return json_incref((json_t *)v);
    case ST_BOOL:
        if (!json_is_boolean(v)) {
            *why = "expected true or false";
            return NULL;
        }
        return json_incref((json_t *)v);
    case ST_DATETIME: {
        int64_t us;
        if (!json_is_string(v) ||
            time_parse_rfc3339(json_string_value(v), json_string_length(v), &us)) {
            *why = "expected an RFC 3339 date-time such as 2026-11-22T10:00:00Z";
            return NULL;
        }
        char out[40];
        size_t n = time_fmt_rfc3339(us, out, sizeof out, -1);
        return json_stringn(out, n);
    }
    case ST_DATE: {
        int32_t days;
        if (!json_is_string(v) ||
            time_parse_date(json_string_value(v), json_string_length(v), &days)) {
            *why = "expected a date as YYYY-MM-DD";
            return NULL;
        }
        return json_incref((json_t *)v);
    }
    case ST_MONEY:
        return money_canon(v, why);
    case ST_REF: {
        kith_id_t id;
        if (!json_is_string(v) || id_decode(json_string_value(v), json_string_length(v), &id)) {
            *why = "expected a record id";
            return NULL;
        }
        char out[ID_TEXT_LEN + 1];
        id_encode(&id, out);
        return json_string(out);
    }
    case ST_OBJECT:
        if (!json_is_object(v)) break;
        if (json_depth(v) > 16) {
            *why = "nested too deeply (16 levels at most)";
            return NULL;
        }
        return json_incref((json_t *)v);
    case ST_ARRAY: {
        if (!json_is_array(v)) break;
        if (json_array_size(v) > f->max_length) {
            *why = "too many items";
            return NULL;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            json_t *c = json_is_null(e) ? NULL : store_value_canon(f, f->item_type, e, why);
            if (!c) {
                if (json_is_null(e)) *why = "arrays cannot hold null";
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, c);
        }
        return a;
    }
    default:
        break;
    }
    static char msg[4][64];
    static _Thread_local int slot;
    slot = (slot + 1) & 3;
    snprintf(msg[slot], sizeof msg[slot], "expected %s %s",
             type == ST_INT || type == ST_ARRAY || type == ST_OBJECT || type == ST_ENUM ||
                     type == ST_EMAIL
                 ? "an"
                 : "a",
             store_type_name(type));
    *why = msg[slot];
    return NULL;
}

static int ref_exists(store_wtxn_t *w, const store_field_t *f, const json_t *v)
{
    const store_coll_t *target = store_schema_coll(w->schema, f->ref);
    if (!target) return 0;
    kith_id_t id;
    if (id_decode(json_string_value(v), json_string_length(v), &id)) return 0;
    uint8_t key[RKEY_LEN];
    store_rkey(key, target->id, &id);
    MDB_val k = {RKEY_LEN, key}, d;
    return mdb_get(w->txn, w->st->dbi[DB_RECORDS], &k, &d) == 0;
}

/* Appends one offending field to d (as err_field_add does to the thread's
 * diagnostic). */
__attribute__((format(printf, 3, 4))) static void field_error(err_diag_t *d, const char *field,
                                                              const char *fmt, ...)
{
    if (d->nfields >= ERR_FIELDS_MAX) {
        d->fields_dropped++;
        return;
    }
    err_field_t *e = &d->fields[d->nfields++];
    snprintf(e->name, sizeof e->name, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* Names every key of in that is not a writable field of c; 1 if any. known:
 * how many of in's keys are fields (all are if that is its size). */
static int unknown_keys(const store_coll_t *c, const json_t *in, size_t known, err_diag_t *d)
{
    if (json_object_size(in) == known) return 0;
    int bad = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        if (!store_coll_field(c, k)) {
            int pseudo = store_coll_field_or_pseudo(c, k) != NULL;
            field_error(d, k, pseudo ? "is set by Kith and cannot be written" : "unknown field");
            bad = 1;
        }
    }
    return bad;
}

/* Checks x, the value given for f (NULL if none): *out gets its canonical
 * form, f's default, or NULL for no value. 1 if it breaks the schema (the
 * reason added to d). */
static int field_check(store_wtxn_t *w, const store_field_t *f, const json_t *x, const json_t *old,
                       int mode, err_diag_t *d, json_t **out)
{
    *out = NULL;
    if (!x || json_is_null(x)) {
        if (mode == VALIDATE_CREATE && f->dflt) {
            *out = json_incref(f->dflt);
        } else if (f->flags & SF_REQUIRED) {
            field_error(d, f->name, "is required");
            return 1;
        }
        return 0;
    }
    const char *why = "invalid";
    json_t *cv = store_value_canon(f, f->type, x, &why);
    if (!cv) {
        field_error(d, f->name, "%s", why);
        return 1;
    }
    /* Refs are checked when written: a ref left unchanged by an update
     * stays valid even if its target was deleted since (deletes do not
     * cascade), or the record could never be edited again. */
    const json_t *prev = old ? json_object_get(old, f->name) : NULL;
    int bad = 0;
    if (prev && json_equal(prev, cv)) {
    } else if (w && f->type == ST_REF && !ref_exists(w, f, cv)) {
        field_error(d, f->name, "no %s record has this id", f->ref);
        bad = 1;
    } else if (w && f->type == ST_ARRAY && f->item_type == ST_REF) {
        for (size_t j = 0; j < json_array_size(cv); j++)
            if (!ref_exists(w, f, json_array_get(cv, j))) {
                field_error(d, f->name, "item %zu: no %s record has this id", j, f->ref);
                bad = 1;
                break;
            }
    }
    *out = cv;
    return bad;
}

/* Sets the thread's diagnostic to d, a record of c that breaks the schema. */
static void validation_failed(const store_coll_t *c, err_diag_t *d)
{
    d->code = KITH_EVALIDATION;
    snprintf(d->msg, sizeof d->msg, "%s: the record breaks the schema", c->name);
    err_restore(d);
}

/* Starts a check of in: d empty, 0; or KITH_EINVAL if in is not an object.
 * The offending fields are collected in d, not in the thread's diagnostic:
 * canonicalising a value may call err_set (time and id parsers), which
 * clears the field list. */
static int check_begin(const json_t *in, err_diag_t *d)
{
    err_clear();
    d->nfields = 0;
    d->fields_dropped = 0;
    d->existing[0] = '\0';
    if (!json_is_object(in)) return err_set(KITH_EINVAL, "a record is a JSON object");
    return 0;
}

json_t *store_validate(store_wtxn_t *w, const store_coll_t *c, const json_t *in, const json_t *old,
                       int mode)
{
    err_diag_t d;
    if (check_begin(in, &d)) return NULL;
    int bad = 0;
    size_t known = 0;
    json_t *out = json_object();
    for (size_t i = 0; i < c->nfields; i++) {
        const store_field_t *f = &c->fields[i];
        json_t *x = json_object_get(in, f->name), *cv;
        known += x != NULL;
        bad |= field_check(w, f, x, old, mode, &d, &cv);
        if (cv) json_object_set_new(out, f->name, cv);
    }
    bad |= unknown_keys(c, in, known, &d);
    if (bad) {
        json_decref(out);
        validation_failed(c, &d);
        return NULL;
    }
    return out;
}

int store_revalidate(store_wtxn_t *w, const store_coll_t *c, json_t *in, json_t *const *pre,
                     const json_t *old, int mode)
{
    err_diag_t d;
    int rc = check_begin(in, &d);
    if (rc) return rc;
    int bad = 0;
    size_t known = 0, first_new = c->nfields;
    for (size_t i = 0; i < c->nfields; i++) {
        const store_field_t *f = &c->fields[i];
        json_t *x = json_object_get(in, f->name), *cv;
        /* as it was validated; an array or object may have been changed in
         * place (a plugin can reach into it), so those are checked again */
        if (x && x == pre[i] && !json_is_array(x) && !json_is_object(x)) {
            known++;
            continue;
        }
        bad |= field_check(w, f, x, old, mode, &d, &cv);
        if (cv) {
            if ((!x || !pre[i]) && first_new == c->nfields) first_new = i;
            json_object_set_new(in, f->name, cv); /* a value replaced keeps its place */
            known++;
        } else if (x) {
            json_object_del(in, f->name); /* null: no value */
        }
    }
    bad |= unknown_keys(c, in, known, &d);
    if (bad) {
        validation_failed(c, &d);
        return KITH_EVALIDATION;
    }
    /* New keys went last: the fields from the first of them on move behind
     * them, in schema order, so the record is in schema order again. */
    for (size_t i = first_new; i < c->nfields; i++) {
        json_t *v = json_object_get(in, c->fields[i].name);
        if (!v) continue;
        json_incref(v);
        json_object_del(in, c->fields[i].name);
        json_object_set_new(in, c->fields[i].name, v);
    }
    return 0;
}
