/*
 * base/timeutil: clocks and RFC 3339 / ISO 8601 date formatting and parsing.
 * All functions are pure or read the clock; callable from any thread.
 */
#ifndef KITH_BASE_TIMEUTIL_H
#define KITH_BASE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock, microseconds since the Unix epoch. */
int64_t time_now_us(void);
/* Monotonic clock in nanoseconds, for durations. */
uint64_t time_mono_ns(void);

/* Formats us as "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z"; frac_digits is 0, 3 or 6,
 * or -1 for "as many as needed" (0, 3 or 6). Returns the length written. */
size_t time_fmt_rfc3339(int64_t us, char *out, size_t cap, int frac_digits);

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z", "...T10:00:00.5+08:00";
 * 't', 'z' and a space instead of 'T' are accepted). 0 or KITH_EINVAL. */
int time_parse_rfc3339(const char *s, size_t len, int64_t *us);

/* Parses "YYYY-MM-DD" into days since 1970-01-01. 0 or KITH_EINVAL. */
int time_parse_date(const char *s, size_t len, int32_t *days);

/* Days since the epoch for a proleptic Gregorian date (no validation). */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
