/*
 * `kith workspace create|list` and `kith key create`.
 */
#include "main/cli.h"

#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int open_dir(const cli_cmd_t *cmd, const char *path, int mode, auth_dir_t **d)
{
    if (auth_dir_open(path, mode, d) != 0) return cli_fail_err(cmd, NULL);
    return 0;
}

int cmd_workspace_create(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA, 1, 1, &o);
    if (rc >= 0) return rc;
    const char *name = o.pos[0];
    if (!auth_workspace_name_ok(name))
        return cli_fail(cmd,
                        "'%s': a workspace name is 1 to 63 of a-z 0-9 - _, starting with a "
                        "letter or digit",
                        name);
    auth_dir_t *d;
    if ((rc = open_dir(cmd, o.data, AUTH_DIR_WRITE, &d))) return rc;
    rc = auth_workspace_create(d, name);
    auth_dir_close(d);
    if (rc) return cli_fail_err(cmd, NULL);
    printf("%s\n", name);
    return CLI_OK;
}

int cmd_workspace_list(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA, 0, 0, &o);
    if (rc >= 0) return rc;
    auth_dir_t *d;
    if ((rc = open_dir(cmd, o.data, AUTH_DIR_READ, &d))) return rc;
    char **names;
    size_t n;
    rc = auth_workspace_list(d, &names, &n);
    auth_dir_close(d);
    if (rc) return cli_fail_err(cmd, NULL);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    free(names);
    return CLI_OK;
}

int cmd_key_create(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv,
                       CLI_NEED_DATA | CLI_ALLOW_WORKSPACE | CLI_ALLOW_ROLE | CLI_ALLOW_LABEL |
                           CLI_ALLOW_USER,
                       0, 0, &o);
    if (rc >= 0) return rc;
    if (!o.workspace) return cli_fail(cmd, "--workspace NAME is required");
    if (!o.role) return cli_fail(cmd, "--role ROLE is required");
    if (o.label && strlen(o.label) > 200) return cli_fail(cmd, "--label is at most 200 bytes");
    if ((o.user && strlen(o.user) > 120) || (o.team && strlen(o.team) > 120))
        return cli_fail(cmd, "--user and --team are at most 120 bytes");
    auth_dir_t *d;
    if ((rc = open_dir(cmd, o.data, AUTH_DIR_WRITE, &d))) return rc;
    if (!auth_workspace_exists(d, o.workspace)) {
        auth_dir_close(d);
        return cli_fail(cmd, "no workspace '%s'", o.workspace);
    }
    if (!auth_role_builtin(o.role)) {
        /* a custom role must exist in the workspace */
        store_t *ws = NULL;
        int known = auth_workspace_open(d, o.workspace, &ws) == 0 && auth_role_known(ws, o.role);
        store_close(ws);
        if (!known) {
            auth_dir_close(d);
            return cli_fail(cmd,
                            "unknown role '%s' (admin, manager, sales, support, readonly, or a "
                            "custom role of the workspace)",
                            o.role);
        }
    }
    char token[AUTH_TOKEN_LEN + 1], key_id[ID_TEXT_LEN + 1];
    auth_key_spec_t spec = {
        .workspace = o.workspace, .role = o.role, .label = o.label, .user = o.user, .team = o.team};
    rc = auth_key_create(d, &spec, token, key_id);
    auth_dir_close(d);
    if (rc) return cli_fail_err(cmd, NULL);
    printf("%s\n", token);
    memset(token, 0, sizeof token);
    return CLI_OK;
}
