/*
 * `kith check` and `kith backup`.
 */
#include "main/cli.h"

#include "auth/auth.h"
#include "base/mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_rmtree(const char *path);

typedef struct check_ctx {
    const char *where;
    uint64_t problems;
} check_ctx_t;

static void on_problem(void *ctx, const char *msg)
{
    check_ctx_t *c = ctx;
    printf("PROBLEM %s: %s\n", c->where, msg);
    c->problems++;
}

static int check_store(store_t *st, const char *where, uint64_t *problems)
{
    check_ctx_t ctx = {where, 0};
    store_check_report_t r;
    int rc = store_check(st, &r, on_problem, &ctx);
    if (rc) {
        printf("PROBLEM %s: the walk stopped: %s\n", where, err_last()->msg);
        (*problems)++;
        return rc;
    }
    printf("%s: %llu collections, %llu records, %llu index entries, %llu changes (last seq "
           "%llu), %llu cursors, %llu idempotency keys, %llu audit entries, %llu timers%s: %s\n",
           where, (unsigned long long)r.collections, (unsigned long long)r.records,
           (unsigned long long)r.index_entries, (unsigned long long)r.log_entries,
           (unsigned long long)r.last_seq, (unsigned long long)r.cursors,
           (unsigned long long)r.idem_keys, (unsigned long long)r.audit_entries,
           (unsigned long long)r.timers,
           r.jobs ? ", index jobs pending" : "", r.problems ? "PROBLEMS" : "ok");
    if (r.problems > 1000)
        printf("PROBLEM %s: %llu more problems not shown\n", where,
               (unsigned long long)(r.problems - 1000));
    *problems += r.problems;
    return 0;
}

static int name_in(char **names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return 1;
    return 0;
}

int cmd_check(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA, 0, 0, &o);
    if (rc >= 0) return rc;
    auth_dir_t *d;
    if (auth_dir_open(o.data, AUTH_DIR_READ, &d) != 0) return cli_fail_err(cmd, NULL);
    uint64_t problems = 0;
    check_store(auth_dir_system(d), "system", &problems);
    char **names = NULL;
    size_t n = 0;
    if (auth_workspace_list(d, &names, &n) != 0) {
        int out = cli_fail_err(cmd, "listing workspaces");
        auth_dir_close(d);
        return out;
    }
    for (size_t i = 0; i < n; i++) {
        char where[128];
        snprintf(where, sizeof where, "workspace %s", names[i]);
        store_t *st;
        if (auth_workspace_open(d, names[i], &st) != 0) {
            printf("PROBLEM %s: cannot open: %s\n", where, err_last()->msg);
            problems++;
            continue;
        }
        check_store(st, where, &problems);
        store_close(st);
    }
    /* Directories nobody registered are leftovers or damage: name them. */
    char wdir[4096];
    snprintf(wdir, sizeof wdir, "%s/workspaces", o.data);
    DIR *dir = opendir(wdir);
    if (!dir) {
        printf("PROBLEM %s: %s\n", wdir, strerror(errno));
        problems++;
    } else {
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.') continue;
            if (!name_in(names, n, e->d_name)) {
                printf("PROBLEM workspaces/%s: a directory that is not a registered workspace\n",
                       e->d_name);
                problems++;
            }
        }
        closedir(dir);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    auth_dir_close(d);
    if (problems) {
        printf("kith check: %llu problem(s) in %s\n", (unsigned long long)problems, o.data);
        return CLI_PROBLEM;
    }
    printf("kith check: ok (%zu workspace(s))\n", n);
    return CLI_OK;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    if (!in) return err_set(err_from_errno(errno), "%s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wbx");
    if (!out) {
        fclose(in);
        return err_set(err_from_errno(errno), "%s: %s", to, strerror(errno));
    }
    chmod(to, mode);
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = err_set(KITH_EIO, "%s: %s", to, strerror(errno));
    if (ferror(in)) rc = err_set(KITH_EIO, "%s: read error", from);
    fclose(in);
    if (fflush(out) != 0 || fsync(fileno(out)) != 0)
        rc = err_set(KITH_EIO, "%s: %s", to, strerror(errno));
    fclose(out);
    return rc;
}

static int backup_store(store_t *st, const char *dest)
{
    if (mkdir(dest, 0750) != 0)
        return err_set(err_from_errno(errno), "%s: %s", dest, strerror(errno));
    return store_backup(st, dest);
}

int cmd_backup(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA, 1, 1, &o);
    if (rc >= 0) return rc;
    const char *dest = o.pos[0];
    struct stat sb;
    if (lstat(dest, &sb) == 0)
        return cli_fail(cmd, "%s already exists; refusing to touch it", dest);
    auth_dir_t *d;
    if (auth_dir_open(o.data, AUTH_DIR_READ, &d) != 0) return cli_fail_err(cmd, NULL);
    char tmp[4096], p[4200], q[4200];
    snprintf(tmp, sizeof tmp, "%s.backup-XXXXXX", dest);
    if (!mkdtemp(tmp)) {
        auth_dir_close(d);
        return cli_fail(cmd, "%s: %s", dest, strerror(errno));
    }
    chmod(tmp, 0750);
    char **names = NULL;
    size_t n = 0;
    /* The workspace list comes from the system copy's snapshot's time: list
     * first, then copy, so every listed workspace is in the backup. */
    rc = auth_workspace_list(d, &names, &n);
    snprintf(p, sizeof p, "%s/system", tmp);
    if (rc == 0) rc = backup_store(auth_dir_system(d), p);
    snprintf(p, sizeof p, "%s/workspaces", tmp);
    if (rc == 0 && mkdir(p, 0750) != 0) rc = err_set(KITH_EIO, "%s: %s", p, strerror(errno));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        store_t *st;
        rc = auth_workspace_open(d, names[i], &st);
        if (rc) break;
        snprintf(p, sizeof p, "%s/workspaces/%s", tmp, names[i]);
        rc = backup_store(st, p);
        store_close(st);
    }
    snprintf(p, sizeof p, "%s/tls", tmp);
    if (rc == 0 && mkdir(p, 0700) != 0) rc = err_set(KITH_EIO, "%s: %s", p, strerror(errno));
    const char *files[][2] = {
        {"kith.json", "0640"}, {"tls/cert.pem", "0644"}, {"tls/key.pem", "0600"}};
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", o.data, files[i][0]);
        snprintf(q, sizeof q, "%s/%s", tmp, files[i][0]);
        if (access(p, F_OK) != 0 && i > 0) continue; /* a directory without TLS files */
        rc = copy_file(p, q, (mode_t)strtol(files[i][1], NULL, 8));
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    auth_dir_close(d);
    if (rc == 0 && rename(tmp, dest) != 0)
        rc = err_set(err_from_errno(errno), "%s: %s", dest, strerror(errno));
    if (rc) {
        int out = cli_fail_err(cmd, NULL);
        cli_rmtree(tmp);
        return out;
    }
    printf("kith backup: wrote %s (%zu workspace(s))\n", dest, n);
    return CLI_OK;
}
