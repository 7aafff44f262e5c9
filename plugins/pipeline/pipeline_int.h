/*
 * pipeline/pipeline_int: what the pipeline plugin's files share. Everything
 * here is set during init and read-only afterwards, so any thread may read
 * it; the functions may be called from any callback (they use only the
 * callback's transaction).
 */
#ifndef KITH_PIPELINE_INT_H
#define KITH_PIPELINE_INT_H

#include "pipeline_util.h"
#include "kp_sdk.h"

#include <kith/plugin.h>

#include <stddef.h>

extern const kith_api_t *K;
/* The built-in pipeline (configuration default_pipeline): what a workspace
 * without a pipelines record marked default uses. */
extern const kith_json_t *pl_builtin;
/* stage_history keeps at most this many entries (configuration history_max). */
extern size_t pl_history_max;

#define PL_STAGES_MAX  50
#define PL_NAME_MAX    200 /* bytes of a pipeline's or a stage's name */
#define PL_STALL_EVENT "deal.stall_due"

/* A pipeline: its definition ({"name", "stages": [...]}), and where it came
 * from. */
typedef struct pl_pipeline {
    kith_json_t *def; /* new: release with pl_pipeline_close */
    const char *name; /* in def */
    const kith_json_t *stages;
    char id[KITH_ID_LEN + 1]; /* the record's id; "" for the built-in one */
} pl_pipeline_t;

/* The pipeline named name, or the workspace's default one (name NULL): the
 * pipelines record marked default, else the built-in one. 0,
 * KITH_PLUGIN_ENOTFOUND (no such pipeline), or another code. */
int pl_pipeline_find(kith_txn_t *tx, const char *name, pl_pipeline_t *out);
void pl_pipeline_close(pl_pipeline_t *p);

/* The stage called name (ASCII case ignored) and its position, or NULL. */
const kith_json_t *pl_stage_find(const pl_pipeline_t *p, const char *name, size_t *index);
/* "won", "lost", or NULL (an open stage). */
const char *pl_stage_outcome(const kith_json_t *stage);
const char *pl_stage_name(const kith_json_t *stage);

/* Checks a pipeline definition's stages: NULL if good, else why (static or
 * in buf). */
const char *pl_stages_check(const kith_json_t *stages, char *buf, size_t cap);

/* A string field of a JSON object, or NULL. */
const char *pl_str(const kith_json_t *o, const char *key);
/* Whether the event's write sets (create) or changes (update) field. */
int pl_changed(const kith_event_t *ev, const char *field);
/* Sends a problem+json and returns 0 (so the route's answer is that one). */
int pl_problem(kith_response_t *res, int status, const char *type, const char *detail);

/* Registration of each part (called by init). */
int pl_deals_register(kith_plugin_t *p);
int pl_routes_register(kith_plugin_t *p);

#endif
