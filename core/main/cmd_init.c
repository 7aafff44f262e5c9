/*
 * `kith init`: a new data directory, built beside the target and renamed into
 * place, so a failure never leaves a half-made directory behind.
 */
#include "main/cli.h"

#include "auth/auth.h"
#include "base/mem.h"
#include "tls/tls_cert.h"

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEV_CERT_DAYS 825

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cli_rmtree(const char *path);
void cli_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p of path's parent. */
static int make_parents(const char *path)
{
    char *copy = xstrdup(path);
    char *parent = dirname(copy);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", parent);
    free(copy);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

int cmd_init(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA | CLI_ALLOW_PLUGINS, 0, 0, &o);
    if (rc >= 0) return rc;
    struct stat sb;
    if (lstat(o.data, &sb) == 0)
        return cli_fail(cmd, "%s already exists; refusing to touch it", o.data);
    if (errno != ENOENT) return cli_fail(cmd, "%s: %s", o.data, strerror(errno));
    if (make_parents(o.data) != 0)
        return cli_fail(cmd, "%s: cannot create the parent directory: %s", o.data, strerror(errno));

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.init-XXXXXX", o.data);
    if (!mkdtemp(tmp)) return cli_fail(cmd, "%s: %s", o.data, strerror(errno));
    chmod(tmp, 0750);
    char cert[4200], key[4200], token[AUTH_TOKEN_LEN + 1], key_id[ID_TEXT_LEN + 1];
    snprintf(cert, sizeof cert, "%s/tls/cert.pem", tmp);
    snprintf(key, sizeof key, "%s/tls/key.pem", tmp);
    auth_dir_t *d = NULL;
    rc = auth_dir_layout_create(tmp, o.plugins);
    if (rc == 0) rc = tls_cert_dev_generate(cert, key, DEV_CERT_DAYS);
    if (rc == 0) rc = auth_dir_open(tmp, AUTH_DIR_WRITE, &d);
    auth_key_spec_t spec = {
        .workspace = "default", .role = "admin", .label = "created by kith init"};
    if (rc == 0) rc = auth_key_create(d, &spec, token, key_id);
    auth_dir_close(d);
    if (rc) {
        int out = cli_fail_err(cmd, o.data);
        cli_rmtree(tmp);
        return out;
    }
    if (rename(tmp, o.data) != 0) {
        int e = errno;
        cli_rmtree(tmp);
        return cli_fail(cmd, "%s: %s", o.data,
                        e == EEXIST || e == ENOTEMPTY ? "appeared meanwhile; left untouched"
                                                      : strerror(e));
    }
    printf("kith: created data directory %s\n", o.data);
    printf("  workspace:    default\n");
    printf("  certificate:  %s/tls/cert.pem (ECDSA P-256, self-signed for localhost, %d days)\n",
           o.data, DEV_CERT_DAYS);
    printf("  admin key id: %s (role admin, workspace default)\n", key_id);
    if (o.plugins && o.plugins[0]) printf("  plugins:      %s\n", o.plugins);
    printf("KITH_API_KEY=%s\n", token);
    memset(token, 0, sizeof token);
    return CLI_OK;
}
