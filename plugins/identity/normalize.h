/*
 * identity/normalize: the canonical forms One ID matches on. Plain C, no Kith
 * headers, so tests can compile it on its own.
 */
#ifndef KITH_IDENTITY_NORMALIZE_H
#define KITH_IDENTITY_NORMALIZE_H

#include <stddef.h>

#define NORM_PHONE_MAX 17 /* "+" and at most 15 digits, and the NUL */

/* A phone number as people write it, in E.164 ("+8613812345678"): full-width
 * digits and signs are read as ASCII; spaces (also U+3000 and U+00A0), dashes,
 * dots, slashes and parentheses are dropped; a leading "00" is "+". A number
 * without "+" is national, in the country of calling code cc ("86"): one
 * leading trunk "0" is dropped (for cc "1", a leading "1" of 11 digits). The
 * result has 8 to 15 digits; a Chinese mobile number (+86 13..19) has 11
 * digits after the code. out has room for NORM_PHONE_MAX bytes. 0, or -1 with *why. */
int norm_phone(const char *in, const char *cc, char out[NORM_PHONE_MAX], const char **why);

/* An e-mail address trimmed (ASCII white space and U+00A0, U+3000) and
 * lower-cased (ASCII; addresses are matched without case everywhere in
 * practice). Returns a new string (free()), or NULL if nothing is left. */
char *norm_email(const char *in);

/* A web domain from what people paste: scheme, user, "www.", port, path,
 * query and a trailing dot removed, lower-cased ("https://www.Acme.com/about"
 * -> "acme.com"). New string (free()), or NULL if nothing is left. */
char *norm_domain(const char *in);

#endif
