/*
 * base/json: helpers over jansson.
 *
 * jansson parses; this module writes. json_write_* append compact JSON to a
 * buf_t: strings escaped per RFC 8259 (bytes that are not UTF-8 become U+FFFD),
 * reals in the shortest form that reads
 * back to the same double (jansson always prints 17 digits, so 19.99 would come
 * out as 19.989999999999998). json_parse applies Kith's input limits.
 */
#ifndef KITH_BASE_JSON_H
#define KITH_BASE_JSON_H

#include "base/buf.h"

#include <jansson.h>
#include <stdint.h>

#define JSON_DEPTH_MAX 64

void json_write_str(buf_t *b, const char *s, size_t len);
void json_write_cstr(buf_t *b, const char *s);
void json_write_int(buf_t *b, int64_t v);
void json_write_real(buf_t *b, double v);
/* Compact JSON of v (object keys in insertion order). */
void json_write_value(buf_t *b, const json_t *v);

/* Compact JSON of v in a new NUL-terminated string (free with free()). */
char *json_to_str(const json_t *v, size_t *len);

/* Parses exactly one JSON value from data (strict RFC 8259: no NUL in strings,
 * duplicate object keys refused, at most JSON_DEPTH_MAX levels deep). Returns a
 * new reference, or NULL with KITH_EINVAL / KITH_ELIMIT and a message naming
 * the line and column. */
json_t *json_parse(const char *data, size_t len);

/* Calls fn with each top-level key of an object's compact text as Kith
 * writes it (json_to_str: valid JSON, so no checks beyond that), as it
 * appears between the quotes (escapes are not undone: field names have
 * none), without parsing the values. fn returns nonzero to stop. Returns -1
 * if s is not an object, else 0. Allocates nothing: for hot paths that need
 * only the names of a stored record's fields. */
int json_object_keys(const char *s, size_t len,
                     int (*fn)(void *ctx, const char *key, size_t klen), void *ctx);

/* Nesting depth of v (a scalar is 1). */
int json_depth(const json_t *v);

#endif
