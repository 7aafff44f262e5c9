/*
 * base/codec: hex and unpadded base64url, for tokens, hashes and opaque cursors;
 * UTF-8 sequence checks, for text that did not come through jansson.
 */
#ifndef KITH_BASE_CODEC_H
#define KITH_BASE_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(const void *data, size_t n, char *out);

/* Base64url without padding; out needs b64url_len(n)+1 bytes. Returns length. */
size_t b64url_len(size_t n);
size_t b64url_encode(const void *data, size_t n, char *out);

/* Decodes unpadded base64url into out (cap bytes). Returns the decoded length,
 * or -1 on a bad character, bad length or overflow. */
long b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap);

/* Length (1-4) of the well-formed UTF-8 sequence at s[0..n), n > 0, or 0 when
 * it is not one (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF). */
size_t utf8_seq_len(const uint8_t *s, size_t n);

/* Whether s is an identifier: 1..max of [a-z0-9_] and the characters of
 * extra (may be NULL). Names of plugins, handlers, routes, counters. */
int ident_ok(const char *s, size_t max, const char *extra);

#endif
