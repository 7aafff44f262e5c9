/*
 * plugin: the .so loader and everything a loaded plugin registered.
 *
 * plugin_load_all takes the "plugins" section of <data>/kith.json (as
 * config_load read and checked it: the file is read once), finds
 * each named plugin in the configured directories, checks it (path policy,
 * ELF, RTLD_NOW | RTLD_LOCAL, descriptor, ABI, build signature, API level,
 * unique name, configuration against its schema) and calls its init with the
 * function table (sdk/include/kith/plugin.h). A refusal is one log line
 * naming the plugin and the reason, and the set goes on without it; a
 * failed init leaves nothing registered. plugin_api_ext gives the api module
 * what the loaded plugins add: routes, per-workspace hooks, collections and
 * timers, counters, and the listing of GET /v1/plugins.
 */
#ifndef KITH_PLUGIN_PLUGIN_H
#define KITH_PLUGIN_PLUGIN_H

#include "api/api.h"
#include "base/buf.h"
#include "config/config.h"

typedef struct plugin_set plugin_set_t;

/* Loads what cfg names (its plugins section; none without one). Never fails
 * as a whole: refusals are logged and listed. */
plugin_set_t *plugin_load_all(const config_t *cfg);
/* Calls each loaded plugin's fini (in reverse order), then unloads it. */
void plugin_set_free(plugin_set_t *ps);

/* Marks the set as serving kith test's throw-away copy: events say so
 * (kith_event_t.test), so plugins can skip effects outside the store. */
void plugin_set_testing(plugin_set_t *ps);

/* How many were refused. */
size_t plugin_set_refused(const plugin_set_t *ps);
/* Human-readable lines, one per plugin: "loaded NAME VERSION FILE (...)" or
 * "refused NAME: REASON" (kith plugins). */
void plugin_set_report(const plugin_set_t *ps, buf_t *out);
/* JSON array of the plugins (GET /v1/plugins). */
void plugin_set_list(const plugin_set_t *ps, buf_t *out);

/* What the api module mounts (valid until plugin_set_free). */
api_ext_t plugin_api_ext(plugin_set_t *ps);

#endif
