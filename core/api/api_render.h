/*
 * api/api_render: rendering records for a caller (scope, masking, fields=).
 */
#ifndef KITH_API_RENDER_H
#define KITH_API_RENDER_H

#include "api/api_int.h"

#define API_FIELDS_MAX 64

typedef struct api_fields {
    int on;
    size_t n;
    char names[API_FIELDS_MAX][STORE_NAME_MAX];
} api_fields_t;

typedef struct api_view {
    int scope;
    int unmask;
    auth_who_t who;
    const api_fields_t *sel; /* NULL or off: every field */
} api_view_t;

/* Parses fields=a,b for c; answers 400 and returns -1 on a bad name. */
int api_fields_parse(http_req_t *r, const store_coll_t *c, const char *list, api_fields_t *out);
api_view_t api_view(http_req_t *r, int scope, const api_fields_t *sel);

/* An export in progress (HTTP and `kith export`): pages of records, rendered
 * for a viewer, as NDJSON or CSV (a header row, then id, version, created_at,
 * updated_at and the fields; arrays and objects as JSON text). */
typedef struct api_export {
    char coll[STORE_NAME_MAX];
    json_t *filter; /* owned by the caller */
    int csv;
    api_view_t view;
    char *cursor; /* where the next page starts (owned) */
    int started, done;
    uint64_t rows;
} api_export_t;

/* Appends the next page (each page reads one short snapshot) to out; sets
 * x->done after the last one. 0 or a KITH_E* code. */
int api_export_page(store_t *st, api_export_t *x, buf_t *out);

/* Appends rec as the viewer may see it. Returns 0 (appended), 1 (outside the
 * viewer's scope: nothing appended), or a KITH_E* error. revealed (may be
 * NULL) gets the names of sensitive fields that went out unmasked (each once).
 * parsed: rec's fields if already parsed, or NULL. */
int api_render_record(const api_view_t *v, const store_coll_t *c, const store_record_t *rec,
                      const json_t *parsed, buf_t *out, json_t *revealed);

#endif
