/*
 * `kith import` and `kith export`: the API's import and export engines run
 * against a data directory directly (safe beside a running server: LMDB
 * serialises the writers). The operator has the files, so nothing is masked;
 * both are audited as actor "cli".
 */
#include "main/cli.h"

#include "api/api_import.h"
#include "api/api_render.h"
#include "base/json.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cli_import {
    int done;
    int resumed;
} cli_import_t;

static void import_done(api_import_t *imp, void *ctx)
{
    (void)imp;
    ((cli_import_t *)ctx)->done = 1;
}

static void import_resume(void *ctx)
{
    ((cli_import_t *)ctx)->resumed = 1;
}

static json_t *cli_audit(const char *what)
{
    char actor[64];
    snprintf(actor, sizeof actor, "cli:uid=%d", (int)geteuid());
    return json_pack("{s:s,s:s}", "actor", actor, "request", what);
}

static json_t *parse_map(const cli_cmd_t *cmd, const char *s, int *bad)
{
    *bad = 0;
    if (!s) return NULL;
    if (s[0] == '{') {
        json_t *j = json_parse(s, strlen(s));
        if (!j) {
            cli_fail(cmd, "--map: malformed JSON");
            *bad = 1;
        }
        return j;
    }
    json_t *map = json_object();
    char *copy = xstrdup(s);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        char *colon = strrchr(tok, ':');
        if (!colon || colon == tok || !colon[1]) {
            cli_fail(cmd, "--map: column:field pairs separated by commas, or a JSON object");
            *bad = 1;
            break;
        }
        *colon = '\0';
        json_object_set_new(map, tok, json_string(colon + 1));
    }
    free(copy);
    return map;
}

int cmd_import(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc =
        cli_parse(cmd, argc, argv, CLI_NEED_DATA | CLI_ALLOW_WORKSPACE | CLI_ALLOW_IO, 1, 1, &o);
    if (rc >= 0) return rc;
    if (!o.collection) return cli_fail(cmd, "--collection NAME is required");
    const char *ws = o.workspace ? o.workspace : "default";
    char delim = ',';
    if (o.delimiter) {
        if (strcmp(o.delimiter, "tab") == 0 || strcmp(o.delimiter, "\\t") == 0)
            delim = '\t';
        else if (strlen(o.delimiter) == 1)
            delim = o.delimiter[0];
        else
            return cli_fail(cmd, "--delimiter: one character, or tab");
    }
    int bad;
    json_t *map = parse_map(cmd, o.map, &bad);
    if (bad) return CLI_ERROR;
    FILE *in = strcmp(o.pos[0], "-") == 0 ? stdin : fopen(o.pos[0], "rb");
    if (!in) {
        if (map) json_decref(map);
        return cli_fail(cmd, "%s: %s", o.pos[0], strerror(errno));
    }
    auth_dir_t *d = NULL;
    store_t *st = NULL;
    if (auth_dir_open(o.data, AUTH_DIR_SERVE, &d) != 0 || auth_workspace_open(d, ws, &st) != 0) {
        rc = cli_fail_err(cmd, NULL);
        if (in != stdin) fclose(in);
        if (map) json_decref(map);
        auth_dir_close(d);
        return rc;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    loop_inbox_t inbox;
    loop_inbox_init(&inbox, &loop);
    cli_import_t ci = {0};
    json_t *who = cli_audit("import");
    api_import_opts_t io = {
        .coll = o.collection, .map = map, .upsert = o.upsert, .delimiter = delim, .audit = who};
    api_import_t *imp = api_import_new(st, &io, &inbox, import_done, import_resume, &ci);
    json_decref(who);
    if (map) json_decref(map);
    if (!imp) {
        rc = cli_fail_err(cmd, NULL);
    } else {
        char buf[65536];
        size_t n;
        while (!ci.done && (n = fread(buf, 1, sizeof buf, in)) > 0) {
            if (api_import_feed(imp, buf, n) != 0) break;
            while (api_import_paused(imp) && !ci.done)
                uv_run(&loop, UV_RUN_ONCE);
        }
        if (ferror(in)) api_import_abort(imp, err_set(KITH_EIO, "%s: read error", o.pos[0]));
        api_import_finish(imp);
        while (!ci.done)
            uv_run(&loop, UV_RUN_ONCE);
        int status;
        json_t *rep = api_import_report(imp, &status);
        char *s = json_dumps(rep, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        if (status) {
            rc = cli_fail(cmd, "%s: %s", o.pos[0],
                          json_string_value(json_object_get(rep, "stopped")));
        } else {
            rc = json_integer_value(json_object_get(rep, "failed")) ? CLI_PROBLEM : CLI_OK;
            if (rc)
                fprintf(stderr, "kith import: %lld row(s) failed; see \"errors\"\n",
                        (long long)json_integer_value(json_object_get(rep, "failed")));
        }
        json_decref(rep);
        api_import_free(imp);
    }
    loop_inbox_close(&inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (in != stdin) fclose(in);
    store_close(st);
    auth_dir_close(d);
    return rc;
}

int cmd_export(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc =
        cli_parse(cmd, argc, argv, CLI_NEED_DATA | CLI_ALLOW_WORKSPACE | CLI_ALLOW_IO, 0, 0, &o);
    if (rc >= 0) return rc;
    if (!o.collection) return cli_fail(cmd, "--collection NAME is required");
    const char *fmt = o.format ? o.format : "ndjson";
    if (strcmp(fmt, "csv") && strcmp(fmt, "ndjson"))
        return cli_fail(cmd, "--format: csv or ndjson");
    json_t *filter = NULL;
    if (o.filter && !(filter = json_parse(o.filter, strlen(o.filter))))
        return cli_fail(cmd, "--filter: %s", err_last()->msg);
    auth_dir_t *d = NULL;
    store_t *st = NULL;
    if (auth_dir_open(o.data, AUTH_DIR_WRITE, &d) != 0 ||
        auth_workspace_open(d, o.workspace ? o.workspace : "default", &st) != 0) {
        rc = cli_fail_err(cmd, NULL);
        if (filter) json_decref(filter);
        auth_dir_close(d);
        return rc;
    }
    api_fields_t sel = {0};
    api_export_t x = {.filter = filter, .csv = strcmp(fmt, "csv") == 0};
    x.view.scope = SCOPE_ALL;
    x.view.unmask = 1;
    x.view.sel = &sel;
    snprintf(x.coll, sizeof x.coll, "%s", o.collection);
    /* check the collection, the fields and the filter before writing anything */
    store_rtxn_t *rt;
    rc = store_read_begin(st, &rt);
    const store_coll_t *c = rc ? NULL : store_schema_coll(store_read_schema(rt), o.collection);
    if (!c || o.collection[0] == '_') {
        rc = cli_fail(cmd, "no collection '%s'", o.collection);
    } else if (o.fields) {
        char *copy = xstrdup(o.fields);
        for (char *tok = strtok(copy, ","); tok && rc == 0; tok = strtok(NULL, ",")) {
            if (!store_coll_field(c, tok) || sel.n >= API_FIELDS_MAX)
                rc = cli_fail(cmd, "--fields: no field '%s' in %s", tok, o.collection);
            else
                snprintf(sel.names[sel.n++], STORE_NAME_MAX, "%s", tok);
        }
        sel.on = 1;
        free(copy);
    }
    if (rc == 0 && filter) {
        store_query_t probe = {.coll = o.collection, .filter = filter, .limit = 1};
        buf_t plan = BUF_INIT;
        if (store_query_plan(rt, &probe, &plan) != 0) rc = cli_fail_err(cmd, "--filter");
        buf_free(&plan);
    }
    if (rt && c) store_read_end(rt);
    FILE *out = NULL;
    if (rc == 0) {
        out = o.out ? fopen(o.out, "wb") : stdout;
        if (!out) rc = cli_fail(cmd, "%s: %s", o.out, strerror(errno));
    }
    if (rc == 0) {
        json_t *who = cli_audit("export");
        json_object_set_new(who, "action", json_string("export"));
        json_object_set_new(who, "collection", json_string(o.collection));
        json_object_set_new(who, "ids", json_array());
        json_object_set_new(who, "fields", json_array());
        store_op_t *op = store_op_audit(who);
        json_decref(who);
        if (store_exec(st, op) != 0) rc = cli_fail_err(cmd, "audit");
        store_op_free(op);
    }
    while (rc == 0 && !x.done) {
        buf_t b = BUF_INIT;
        if (api_export_page(st, &x, &b) != 0)
            rc = cli_fail_err(cmd, NULL);
        else if (b.len && fwrite(b.p, 1, b.len, out) != b.len)
            rc = cli_fail(cmd, "%s: %s", o.out ? o.out : "stdout", strerror(errno));
        buf_free(&b);
    }
    if (out == stdout) {
        fflush(stdout);
    } else if (out) {
        int closed = fclose(out);
        out = NULL;
        if (closed != 0 && rc == 0) rc = cli_fail(cmd, "%s: %s", o.out, strerror(errno));
    }
    if (rc == 0 && o.out)
        fprintf(stderr, "kith export: %llu record(s) to %s\n", (unsigned long long)x.rows, o.out);
    free(x.cursor);
    if (filter) json_decref(filter);
    store_close(st);
    auth_dir_close(d);
    return rc;
}
