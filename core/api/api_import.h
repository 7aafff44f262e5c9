/*
 * api/api_import: CSV import into a collection, streaming. Used by POST
 * /v1/{collection}/import and by `kith import` alike.
 *
 * The first record is the header. Columns map to fields by an explicit map
 * ({"CSV column": "field"}) or by name (case-insensitive; spaces and dashes
 * read as _); other columns are ignored and reported. Each row becomes a
 * create, or with `upsert` an update of the record whose unique field matches
 * (upsert "true": of the record the create conflicts with, store_op_upsert).
 * Text is converted by field type (int, number, bool, array "a;b", object
 * JSON; an empty cell is an absent value; a date-time without a zone is UTC).
 * Rows that fail are reported with their row number (the header is row 1) and
 * the reasons; the others are written, up to `window` ops in flight.
 */
#ifndef KITH_API_IMPORT_H
#define KITH_API_IMPORT_H

#include "api/api_int.h"

typedef struct api_import api_import_t;

typedef struct api_import_opts {
    const char *coll;
    const json_t *map;     /* {"column": "field"} or NULL */
    const char *upsert;    /* unique field to match on, "true" (on conflict), or NULL */
    char delimiter;        /* 0 = ',' */
    json_t *audit;         /* {"actor","request"} for every row's audit entry, or NULL */
    store_guard_fn guard;  /* record scope check, or NULL */
    const void *guard_ctx; /* copied per op (guard_size bytes) */
    size_t guard_size;
    const json_t *defaults; /* fields set on rows that lack them (owner, team), or NULL */
    int hide_existing;      /* row errors name no existing record (the caller may not see it) */
    size_t window;          /* ops in flight; 0 = 4096 (the writer takes up to 1024 at
                               a time: the loop parses the next batch meanwhile) */
    size_t errors_max;      /* rows described in the report; 0 = 1000 */
} api_import_opts_t;

/* Called on the loop thread when every row is written (or the import stopped). */
typedef void (*api_import_done_fn)(api_import_t *imp, void *ctx);
/* Called when the import can take input again after asking for a pause. */
typedef void (*api_import_resume_fn)(void *ctx);

/* Starts an import into st (a snapshot of the collection's schema is taken).
 * NULL with a diagnostic if the collection or options are wrong. */
api_import_t *api_import_new(store_t *st, const api_import_opts_t *o, loop_inbox_t *inbox,
                             api_import_done_fn done, api_import_resume_fn resume, void *ctx);
/* Feeds CSV bytes. 0, or an error (malformed CSV, bad header) that stops it. */
int api_import_feed(api_import_t *imp, const char *data, size_t n);
/* 1 while too many rows are in flight: stop feeding until resume is called. */
int api_import_paused(const api_import_t *imp);
/* End of input; done runs once every row is written (maybe at once). */
void api_import_finish(api_import_t *imp);
/* Stops submitting rows; done still runs after those in flight. */
void api_import_abort(api_import_t *imp, int code);
/* {"rows","created","updated","unchanged","failed","ignored_columns","errors",...}
 * (new reference); status is 0, or the error that stopped the import. */
json_t *api_import_report(const api_import_t *imp, int *status);
void api_import_free(api_import_t *imp);

#endif
