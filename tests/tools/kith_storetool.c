/*
 * kith-storetool: a test tool that drives the store of a data directory.
 *
 *   kith-storetool write  --data DIR --ledger FILE [--submitters N]
 *       Creates, updates and deletes records in collection "crash" of workspace
 *       "default" with N concurrent submitters until killed. After each write
 *       is acknowledged (committed), appends one line to the ledger:
 *         C <id> <n>       created with field n
 *         U <id> <version> updated to version
 *         P <id>           a delete is about to be submitted (written before
 *                          submitting: it may commit without being acknowledged)
 *         D <id>           deleted
 *   kith-storetool verify --data DIR --ledger FILE
 *       Checks every acknowledged write of the ledger against the store: created
 *       records exist with their n, updates reached at least their version,
 *       deleted records are gone. Exit 0 if all hold, 1 otherwise.
 *   kith-storetool put --data DIR --workspace W --schema JSON --record JSON
 *       Creates the collection (if needed) and one record; prints its id.
 *
 * The crash test (tests/integration/test_crash.py) kills `write` with SIGKILL at
 * random moments and runs `kith check` and `verify` after each kill.
 */
#include "auth/auth.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/rand.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static const char *crash_schema =
    "{\"name\":\"crash\",\"fields\":["
    "{\"name\":\"n\",\"type\":\"int\",\"required\":true,\"indexed\":true},"
    "{\"name\":\"tag\",\"type\":\"string\",\"unique\":true},"
    "{\"name\":\"note\",\"type\":\"text\"},"
    "{\"name\":\"v\",\"type\":\"int\"}]}";

static int die(const char *what)
{
    fprintf(stderr, "kith-storetool: %s: %s\n", what, err_last()->msg);
    return 2;
}

static const char *opt(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return dflt;
}

static int ensure_schema(store_t *st, const char *def)
{
    json_t *j = json_parse(def, strlen(def));
    if (!j) return -1;
    store_op_t *op = store_op_schema(j);
    json_decref(j);
    int rc = store_exec(st, op);
    store_op_free(op);
    return rc;
}

/* ---- write ---- */

#define RECENT 4096

typedef struct writer {
    store_t *st;
    loop_inbox_t inbox;
    int ledger;
    uint64_t n;
    kith_id_t recent[RECENT]; /* acknowledged, not deleted (as far as we know) */
    uint64_t recent_ver[RECENT];
    int recent_live[RECENT];
    size_t nrecent;
} writer_t;

static void submit_next(writer_t *w);

static void ledger_line(writer_t *w, const char *line, size_t n)
{
    if (write(w->ledger, line, n) != (ssize_t)n) {
        perror("ledger");
        exit(3);
    }
}

static void on_done(store_op_t *op, void *ctx)
{
    writer_t *w = ctx;
    char ids[ID_TEXT_LEN + 1], line[128];
    int n = 0;
    if (op->status == 0) {
        id_encode(&op->rid, ids);
        size_t slot = (size_t)op->udata;
        if (op->kind == STORE_OP_CREATE) {
            json_t *f = json_parse(op->json, op->json_len);
            n = snprintf(line, sizeof line, "C %s %lld\n", ids,
                         (long long)json_integer_value(json_object_get(f, "n")));
            json_decref(f);
            slot = w->nrecent < RECENT ? w->nrecent++ : (size_t)(w->n % RECENT);
            w->recent[slot] = op->rid;
            w->recent_ver[slot] = op->version;
            w->recent_live[slot] = 1;
        } else if (op->kind == STORE_OP_UPDATE) {
            n = snprintf(line, sizeof line, "U %s %llu\n", ids, (unsigned long long)op->version);
            if (memcmp(&w->recent[slot], &op->rid, ID_LEN) == 0) w->recent_ver[slot] = op->version;
        } else {
            n = snprintf(line, sizeof line, "D %s\n", ids);
            if (memcmp(&w->recent[slot], &op->rid, ID_LEN) == 0) w->recent_live[slot] = 0;
        }
        ledger_line(w, line, (size_t)n);
    } else if (op->status != KITH_ENOTFOUND && op->status != KITH_ECONFLICT) {
        fprintf(stderr, "kith-storetool: write failed: %s\n", op->diag->msg);
        exit(4);
    }
    store_op_free(op);
    submit_next(w);
}

static void submit_next(writer_t *w)
{
    uint64_t n = ++w->n;
    uint32_t r;
    rand_bytes(&r, sizeof r);
    store_op_t *op;
    size_t slot = w->nrecent ? r % w->nrecent : 0;
    /* About 40% creates, 20% updates, 40% deletes of recent records: every
     * path is exercised and the data set stays small enough to check often. */
    unsigned pick = r % 20;
    if (w->nrecent > 16 && pick < 4 && w->recent_live[slot]) {
        json_t *p = json_pack("{s:I}", "v", (json_int_t)n);
        op = store_op_update("crash", &w->recent[slot], p, 0);
        json_decref(p);
    } else if (w->nrecent > 16 && pick >= 4 && pick < 12 && w->recent_live[slot]) {
        char ids[ID_TEXT_LEN + 1], line[64];
        id_encode(&w->recent[slot], ids);
        ledger_line(w, line, (size_t)snprintf(line, sizeof line, "P %s\n", ids));
        w->recent_live[slot] = 0; /* never update what may be gone */
        op = store_op_delete("crash", &w->recent[slot], 0);
    } else {
        char tag[48], note[256];
        snprintf(tag, sizeof tag, "t-%d-%llu", (int)getpid(), (unsigned long long)n);
        memset(note, 'x', 200);
        note[200] = '\0';
        json_t *f = json_pack("{s:I,s:s,s:s}", "n", (json_int_t)n, "tag", tag, "note", note);
        op = store_op_create("crash", f);
        json_decref(f);
    }
    op->udata = (void *)slot;
    store_submit(w->st, op, &w->inbox, on_done, w);
}

static int cmd_write(int argc, char **argv)
{
    const char *data = opt(argc, argv, "--data", NULL);
    const char *ledger = opt(argc, argv, "--ledger", NULL);
    int nsub = atoi(opt(argc, argv, "--submitters", "32"));
    if (!data || !ledger || nsub < 1)
        return fprintf(stderr, "usage: write --data DIR --ledger FILE\n"), 2;
    auth_dir_t *d;
    if (auth_dir_open(data, AUTH_DIR_SERVE, &d)) return die(data);
    writer_t *w = xcalloc(1, sizeof *w);
    if (auth_workspace_open(d, "default", &w->st)) return die("default");
    if (ensure_schema(w->st, crash_schema)) return die("schema");
    w->ledger = open(ledger, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (w->ledger < 0) return perror(ledger), 2;
    uv_loop_t *loop = uv_default_loop();
    loop_inbox_init(&w->inbox, loop);
    w->n = (uint64_t)getpid() * 1000000000ull;
    for (int i = 0; i < nsub; i++)
        submit_next(w);
    uv_run(loop, UV_RUN_DEFAULT); /* until SIGKILL */
    return 0;
}

/* ---- verify ---- */

typedef struct entry {
    kith_id_t id;
    long long n;
    uint64_t version;
    int created, deleted, pending_delete;
} entry_t;

static int cmp_entry(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

static int cmd_verify(int argc, char **argv)
{
    const char *data = opt(argc, argv, "--data", NULL);
    const char *ledger = opt(argc, argv, "--ledger", NULL);
    if (!data || !ledger) return fprintf(stderr, "usage: verify --data DIR --ledger FILE\n"), 2;
    FILE *f = fopen(ledger, "r");
    if (!f) return perror(ledger), 2;
    size_t cap = 1024, n = 0;
    entry_t *e = xmalloc(cap * sizeof *e);
    char line[256];
    size_t lines = 0, partial = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') {
            partial++; /* killed mid-line: that ack was never fully recorded */
            continue;
        }
        char op, ids[64];
        unsigned long long x = 0;
        if (sscanf(line, "%c %63s %llu", &op, ids, &x) < 2) {
            fprintf(stderr, "verify: bad ledger line: %s", line);
            return 2;
        }
        if (n == cap) e = xrealloc(e, (cap *= 2) * sizeof *e);
        memset(&e[n], 0, sizeof e[n]);
        if (id_decode(ids, strlen(ids), &e[n].id)) return die("ledger id");
        e[n].created = op == 'C';
        e[n].deleted = op == 'D';
        e[n].pending_delete = op == 'P';
        e[n].n = op == 'C' ? (long long)x : -1;
        e[n].version = op == 'U' ? x : (op == 'C' ? 1 : 0);
        n++;
        lines++;
    }
    fclose(f);
    /* Fold the ledger per id: stable sort keeps the order of each id's lines. */
    qsort(e, n, sizeof *e, cmp_entry);
    auth_dir_t *d;
    if (auth_dir_open(data, AUTH_DIR_READ, &d)) return die(data);
    store_t *st;
    if (auth_workspace_open(d, "default", &st)) return die("default");
    store_rtxn_t *rt;
    if (store_read_begin(st, &rt)) return die("read");
    size_t bad = 0, checked = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int created = 0, deleted = 0, pending = 0;
        long long nv = -1;
        uint64_t ver = 0;
        for (; j < n && memcmp(&e[j].id, &e[i].id, ID_LEN) == 0; j++) {
            created |= e[j].created;
            deleted |= e[j].deleted;
            pending |= e[j].pending_delete;
            if (e[j].n >= 0) nv = e[j].n;
            if (e[j].version > ver) ver = e[j].version;
        }
        char ids[ID_TEXT_LEN + 1];
        id_encode(&e[i].id, ids);
        store_record_t rec;
        int rc = store_get(rt, "crash", &e[i].id, &rec);
        checked++;
        if (deleted) {
            if (rc != KITH_ENOTFOUND) {
                printf("LOST DELETE %s: record still present\n", ids);
                bad++;
            }
        } else if (rc == KITH_ENOTFOUND && pending) {
            /* deleted by a committed delete whose acknowledgement was cut off */
        } else if (rc != 0) {
            printf("LOST %s: %s\n", ids, err_last()->msg);
            bad++;
        } else {
            if (rec.version < ver) {
                printf("LOST UPDATE %s: version %llu < acknowledged %llu\n", ids,
                       (unsigned long long)rec.version, (unsigned long long)ver);
                bad++;
            }
            if (created && nv >= 0) {
                json_t *fj = store_record_fields(&rec);
                if (json_integer_value(json_object_get(fj, "n")) != nv) {
                    printf("WRONG %s: n differs from the acknowledged create\n", ids);
                    bad++;
                }
                json_decref(fj);
            }
        }
        i = j;
    }
    store_read_end(rt);
    store_close(st);
    auth_dir_close(d);
    free(e);
    printf("verify: %zu ledger lines (%zu partial), %zu records checked, %zu lost\n", lines,
           partial, checked, bad);
    return bad ? 1 : 0;
}

/* ---- put ---- */

static int cmd_put(int argc, char **argv)
{
    const char *data = opt(argc, argv, "--data", NULL);
    const char *ws = opt(argc, argv, "--workspace", "default");
    const char *schema = opt(argc, argv, "--schema", NULL);
    const char *record = opt(argc, argv, "--record", NULL);
    if (!data || !schema || !record)
        return fprintf(stderr, "usage: put --data DIR --schema JSON --record JSON\n"), 2;
    auth_dir_t *d;
    if (auth_dir_open(data, AUTH_DIR_WRITE, &d)) return die(data);
    store_t *st;
    if (auth_workspace_open(d, ws, &st)) return die(ws);
    if (ensure_schema(st, schema)) return die("schema");
    json_t *def = json_parse(schema, strlen(schema));
    json_t *rec = json_parse(record, strlen(record));
    if (!def || !rec) return die("json");
    store_op_t *op = store_op_create(json_string_value(json_object_get(def, "name")), rec);
    if (store_exec(st, op)) return die("create");
    char ids[ID_TEXT_LEN + 1];
    id_encode(&op->rid, ids);
    printf("%s\n", ids);
    store_op_free(op);
    json_decref(def);
    json_decref(rec);
    store_close(st);
    auth_dir_close(d);
    return 0;
}

int main(int argc, char **argv)
{
    mem_init();
    if (argc >= 2 && strcmp(argv[1], "write") == 0) return cmd_write(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) return cmd_verify(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "put") == 0) return cmd_put(argc - 1, argv + 1);
    fprintf(stderr, "usage: kith-storetool write|verify|put ...\n");
    return 2;
}
