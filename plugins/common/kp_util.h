/*
 * plugins/common/kp_util: plain C that first-party plugins share — calendar
 * dates and RFC 3339 times, ASCII case, query strings. No Kith headers (a
 * plugin sees only sdk/include), so tests compile it on its own; compiled
 * into each plugin that uses it (kith_first_party_plugin). Every function is
 * pure and may be called from any thread.
 */
#ifndef KITH_PLUGINS_KP_UTIL_H
#define KITH_PLUGINS_KP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define KP_ISO_MAX  25 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" and the NUL */
#define KP_DATE_MAX 11 /* "YYYY-MM-DD" and the NUL */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t kp_days_from_civil(int64_t y, unsigned m, unsigned d);

/* "YYYY-MM-DD" (or the date part of an RFC 3339 time, which must then go on
 * with 'T' or 't') as days since 1970-01-01: 0, or -1 if it is not a real date. */
int kp_date_parse(const char *s, int64_t *days);

/* An RFC 3339 date-time ("2026-11-23T05:50:30.123456Z", "...+08:00") or a
 * date ("2026-11-23", midnight UTC) as Unix milliseconds: 0, or -1 if it is
 * neither. */
int kp_time_parse(const char *s, int64_t *ms);

/* A time in Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 0..9999). Returns out. */
char *kp_iso_from_ms(int64_t ms, char out[KP_ISO_MAX]);

/* The UTC date of a time in Unix ms, "YYYY-MM-DD". Returns out. */
char *kp_date_from_ms(int64_t ms, char out[KP_DATE_MAX]);

/* "first last" (either may be NULL) in out, cut to fit cap - 1 bytes at a
 * UTF-8 character boundary (a cut in the middle of one would not be text).
 * Returns its length. */
size_t kp_full_name(const char *first, const char *last, char *out, size_t cap);

/* Whether a and b are equal ignoring ASCII case (NULL equals nothing). */
int kp_ieq(const char *a, const char *b);

/* The value of a hex digit, or -1. */
int kp_hex(char c);

/* The value of parameter name in a raw query string ("a=1&b=x%20y"),
 * percent-decoded ('+' is a space), in out (cap bytes). 1 if found, 0 if
 * not, -1 if it is malformed (a bad escape, a NUL, too long). The first
 * occurrence counts. */
int kp_query_param(const char *query, const char *name, char *out, size_t cap);

#endif
