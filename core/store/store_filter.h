/*
 * store/store_filter: the JSON filter grammar shared by the HTTP API, Lua,
 * segments, permissions and webhook filters (reference: store/README.md).
 * A filter is compiled against one collection's schema, then matched against
 * records. Compiled filters are immutable and may be shared between threads.
 */
#ifndef KITH_STORE_FILTER_H
#define KITH_STORE_FILTER_H

#include "store/store.h"

typedef struct store_filter store_filter_t;

/* Compiles j (NULL or {} = match everything) for collection c. KITH_EINVAL
 * with a message naming the offending part ("filter.amount.gt: expected a
 * number"), or KITH_ELIMIT when too deep (16) or too large (256 terms). */
int store_filter_compile(const store_coll_t *c, const json_t *j, store_filter_t **out);
void store_filter_free(store_filter_t *f);

/* 1 if rec matches, 0 if not. fields: rec's parsed fields, or NULL to parse
 * them here. A negative KITH_E* code if the record cannot be read. */
int store_filter_match(const store_filter_t *f, const store_record_t *rec, const json_t *fields);

/* True if the filter matches everything (no parsing needed). */
int store_filter_is_true(const store_filter_t *f);

/* Names every field the filter reads into out (for field-level checks). */
void store_filter_fields(const store_filter_t *f, const store_field_t **out, size_t *n, size_t cap);

#endif
