/*
 * plugins/common/kp_sdk: small helpers over the SDK's function table that
 * first-party plugins share (kp_util is the plain C without Kith headers).
 * Compiled into every first-party plugin by kith_first_party_plugin.
 */
#ifndef KITH_PLUGINS_KP_SDK_H
#define KITH_PLUGINS_KP_SDK_H

#include <kith/plugin.h>

/* Calls fn for every record that q's filter and sort select, a page of
 * q->limit (0: 1,000) at a time, following cursors (q->cursor is ignored).
 * Returns 0 when all were seen, fn's nonzero value if it stopped, or an
 * entity_query failure code. */
int kp_query_all(const kith_api_t *K, kith_txn_t *tx, const kith_query_t *q, kith_row_fn fn,
                 void *ud);

/* Whether v is a JSON number (integer or real). */
int kp_is_number(const kith_api_t *K, const kith_json_t *v);

/* Answers an RFC 9457 problem; returns 0 (the route answered). */
int kp_problem(const kith_api_t *K, kith_response_t *res, int status, const char *type,
               const char *detail);

#endif
