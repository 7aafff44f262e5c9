/*
 * cmd_plugins: `kith plugins --data DIR` — loads the configured plugins as
 * `kith serve` would (every check, then init and fini) and lists each as
 * loaded or refused. Exit 1 if any was refused.
 */
#include "main/cli.h"

#include "base/buf.h"
#include "base/err.h"
#include "config/config.h"
#include "plugin/plugin.h"

#include <stdio.h>

int cmd_plugins(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, CLI_NEED_DATA, 0, 0, &o);
    if (rc >= 0) return rc;
    config_t cfg;
    if (config_load(&cfg, o.data) != 0) return cli_fail_err(cmd, NULL);
    plugin_set_t *ps = plugin_load_all(&cfg);
    config_release(&cfg);
    buf_t b = BUF_INIT;
    plugin_set_report(ps, &b);
    if (b.len == 0) buf_addf(&b, "no plugins configured (plugins.load in %s/kith.json)\n", o.data);
    fwrite(b.p, 1, b.len, stdout);
    buf_free(&b);
    int out = plugin_set_refused(ps) ? CLI_PROBLEM : CLI_OK;
    plugin_set_free(ps);
    return out;
}
