/*
 * main: the `kith` command — dispatch, help and version.
 */
#include "main/cli.h"

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_version(const cli_cmd_t *cmd, int argc, char **argv);

static const cli_cmd_t commands[] = {
    {"init", "init --data DIR [--plugins NAME,...]",
     "Creates DIR with the 'default' workspace, a development TLS certificate\n"
     "(ECDSA P-256, self-signed for localhost) and an admin API key for 'default'.\n"
     "--plugins names the plugins kith.json loads (plugins.load), in order.\n"
     "The last line of output is KITH_API_KEY=<token>. Refuses if DIR exists.",
     cmd_init},
    {"workspace create", "workspace create NAME --data DIR",
     "Creates workspace NAME (1-63 of a-z 0-9 - _, starting with a letter or digit).",
     cmd_workspace_create},
    {"workspace list", "workspace list --data DIR", "Prints the workspaces, one per line.",
     cmd_workspace_list},
    {"key create",
     "key create --data DIR --workspace NAME --role ROLE [--label TEXT] [--user ID] [--team NAME]",
     "Creates an API key and prints the token alone on stdout. Only its hash is\n"
     "stored: the token cannot be shown again. Roles: admin, manager, sales,\n"
     "support, readonly, or a custom role of the workspace. --user and --team say\n"
     "whose records the key reaches under the roles' own and team scopes (the\n"
     "records' owner and team fields); without --user the key id stands for it.",
     cmd_key_create},
    {"check", "check --data DIR",
     "Walks the system store and every workspace: each record's checksum and\n"
     "schema, each index entry against its record and back, unique indexes, the\n"
     "change log's sequence and the consumer cursors. Prints counts; exits 1 and\n"
     "names each inconsistency if it finds any. Safe while a server runs.",
     cmd_check},
    {"backup", "backup --data DIR DEST",
     "Writes a compacted, consistent hot copy of DIR into DEST (which must not\n"
     "exist): configuration, certificate, system store and every workspace. Safe\n"
     "while a server runs; `kith check --data DEST` accepts the copy.",
     cmd_backup},
    {"serve", "serve --data DIR [--listen HOST:PORT] [--plain] [--threads N]",
     "Serves the HTTP/1.1 + JSON API over TLS (HTTPS on 127.0.0.1:8443 unless the\n"
     "configuration or --listen says otherwise). --plain serves unencrypted HTTP\n"
     "and is refused on anything but a loopback address. --threads sets the I/O\n"
     "loops (default: one per core). SIGHUP reloads the certificate; SIGTERM\n"
     "drains (finishes requests in flight) and exits 0.",
     cmd_serve},
    {"import",
     "import --data DIR [--workspace NAME] --collection NAME [--map MAP] [--upsert FIELD] "
     "[--delimiter C] FILE",
     "Imports an RFC 4180 CSV file (with a header row; - reads stdin) into a\n"
     "collection, streaming. Columns map to fields by --map ({\"Column\":\"field\"}\n"
     "or Column:field,...) or by name. --upsert updates the record whose unique\n"
     "FIELD matches instead of creating one. Prints a JSON report (rows, created,\n"
     "updated, failed, and each failed row's number and reasons); exits 1 if any\n"
     "row failed, 2 if the file could not be read as CSV.",
     cmd_import},
    {"export",
     "export --data DIR [--workspace NAME] --collection NAME [--format csv|ndjson] "
     "[--filter JSON] [--fields a,b] [--out FILE]",
     "Writes a collection's records (those matching --filter) as NDJSON or CSV to\n"
     "FILE or stdout, streaming one page at a time. The export is audited.",
     cmd_export},
    {"test", "test --data DIR [--workspace NAME] FILE...",
     "Runs admin-written Lua tests (describe/it/expect) against a throw-away copy\n"
     "of a workspace (default: default) with its current scripts loaded, made in\n"
     "$TMPDIR and removed afterwards; the workspace itself is never written (a\n"
     "server may be running). Prints one line per test (`ok N - ...` or `not ok\n"
     "N - ...` with `# file:line: message`) and a summary; exits 1 if any test\n"
     "failed, 2 if a file cannot be read or compiled. See sdk/lua/kith_test.lua.",
     cmd_test},
    {"plugins", "plugins --data DIR",
     "Loads the plugins the configuration names, as `kith serve` would, and lists\n"
     "each as loaded (name, version, file, what it registered) or refused (the\n"
     "reason). Exits 1 if any was refused.",
     cmd_plugins},
    {"version", "version", "Prints the version, the plugin ABI number and the API level.",
     cmd_version},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

static int cmd_version(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_opts_t o;
    int rc = cli_parse(cmd, argc, argv, 0, 0, 0, &o);
    if (rc >= 0) return rc;
    printf("kith %s\nplugin-abi %d\napi-level %d\n", KITH_VERSION, KITH_PLUGIN_ABI, KITH_API_LEVEL);
    return CLI_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kith <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  kith %s\n", commands[i].usage);
    fprintf(f, "\n`kith <command> --help` explains one command. --data may also come from "
               "$KITH_DATA.\n");
}

int main(int argc, char **argv)
{
    mem_init();
    if (argc < 2) {
        usage(stderr);
        return CLI_ERROR;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(&commands[NCOMMANDS - 1], 1, argv + 1);
    /* Commands are one or two words ("check", "workspace create"). */
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *name = commands[i].name;
        const char *sp = strchr(name, ' ');
        if (!sp) {
            if (strcmp(argv[1], name) == 0)
                return commands[i].run(&commands[i], argc - 1, argv + 1);
            continue;
        }
        size_t n = (size_t)(sp - name);
        if (strlen(argv[1]) == n && strncmp(argv[1], name, n) == 0 && argc >= 3 &&
            strcmp(argv[2], sp + 1) == 0)
            return commands[i].run(&commands[i], argc - 2, argv + 2);
    }
    /* A group word alone ("kith workspace"), with --help, or with an unknown
     * subcommand lists the group's commands (after the error line, if any). */
    int group = 0, helpme = argc >= 3 && strcmp(argv[2], "--help") == 0;
    FILE *out = helpme ? stdout : stderr;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *sp = strchr(commands[i].name, ' ');
        if (!sp || strlen(argv[1]) != (size_t)(sp - commands[i].name) ||
            strncmp(argv[1], commands[i].name, (size_t)(sp - commands[i].name)) != 0)
            continue;
        if (!group) {
            if (!helpme)
                fprintf(stderr, "kith %s: unknown or missing subcommand%s%s\n", argv[1],
                        argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "");
            fprintf(out, "usage:\n");
        }
        fprintf(out, "  kith %s\n", commands[i].usage);
        group = 1;
    }
    if (group) return helpme ? CLI_OK : CLI_ERROR;
    fprintf(stderr, "kith: unknown command '%s' (try kith --help)\n", argv[1]);
    return CLI_ERROR;
}

/* ---- shared helpers ---- */

int cli_fail(const cli_cmd_t *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "kith %s: %s\n", cmd->name, msg);
    return CLI_ERROR;
}

int cli_fail_err(const cli_cmd_t *cmd, const char *what)
{
    const err_diag_t *e = err_last();
    if (e->nfields)
        return cli_fail(cmd, "%s%s%s (%s: %s)", what ? what : "", what ? ": " : "", e->msg,
                        e->fields[0].name, e->fields[0].msg);
    return cli_fail(cmd, "%s%s%s", what ? what : "", what ? ": " : "", e->msg);
}

void cli_help(const cli_cmd_t *cmd, int to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;
    fprintf(f, "usage: kith %s\n", cmd->usage);
    if (!to_stderr && cmd->help) fprintf(f, "\n%s\n", cmd->help);
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, int allow, int npos_min, int npos_max,
              cli_opts_t *o)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"workspace", required_argument, NULL, 'w'},
        {"role", required_argument, NULL, 'r'},
        {"label", required_argument, NULL, 'l'},
        {"user", required_argument, NULL, 'u'},
        {"team", required_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'L'},
        {"threads", required_argument, NULL, 'T'},
        {"plain", no_argument, NULL, 'P'},
        {"collection", required_argument, NULL, 'C'},
        {"map", required_argument, NULL, 'M'},
        {"upsert", required_argument, NULL, 'U'},
        {"delimiter", required_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'F'},
        {"filter", required_argument, NULL, 'W'},
        {"fields", required_argument, NULL, 'S'},
        {"out", required_argument, NULL, 'O'},
        {"plugins", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cli_help(cmd, 0);
            return CLI_OK;
        case 'd':
            if (!(allow & CLI_NEED_DATA)) goto unknown;
            o->data = optarg;
            break;
        case 'w':
            if (!(allow & CLI_ALLOW_WORKSPACE)) goto unknown;
            o->workspace = optarg;
            break;
        case 'r':
            if (!(allow & CLI_ALLOW_ROLE)) goto unknown;
            o->role = optarg;
            break;
        case 'l':
            if (!(allow & CLI_ALLOW_LABEL)) goto unknown;
            o->label = optarg;
            break;
        case 'u':
            if (!(allow & CLI_ALLOW_USER)) goto unknown;
            o->user = optarg;
            break;
        case 't':
            if (!(allow & CLI_ALLOW_USER)) goto unknown;
            o->team = optarg;
            break;
        case 'L':
            if (!(allow & CLI_ALLOW_SERVE)) goto unknown;
            o->listen = optarg;
            break;
        case 'T':
            if (!(allow & CLI_ALLOW_SERVE)) goto unknown;
            o->threads = optarg;
            break;
        case 'P':
            if (!(allow & CLI_ALLOW_SERVE)) goto unknown;
            o->plain = 1;
            break;
        case 'C':
        case 'M':
        case 'U':
        case 'D':
        case 'F':
        case 'W':
        case 'S':
        case 'O': {
            if (!(allow & CLI_ALLOW_IO)) goto unknown;
            const char **slot = c == 'C'   ? &o->collection
                                : c == 'M' ? &o->map
                                : c == 'U' ? &o->upsert
                                : c == 'D' ? &o->delimiter
                                : c == 'F' ? &o->format
                                : c == 'W' ? &o->filter
                                : c == 'S' ? &o->fields
                                           : &o->out;
            *slot = optarg;
            break;
        }
        case 'G':
            if (!(allow & CLI_ALLOW_PLUGINS)) goto unknown;
            o->plugins = optarg;
            break;
        case ':':
            cli_fail(cmd, "option %s needs a value", argv[optind - 1]);
            cli_help(cmd, 1);
            return CLI_ERROR;
        default:
        unknown:
            cli_fail(cmd, "unknown option '%s'", argv[optind - 1]);
            cli_help(cmd, 1);
            return CLI_ERROR;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (o->npos >= npos_max || o->npos >= CLI_POS_MAX) {
            cli_fail(cmd, "unexpected argument '%s'", argv[i]);
            cli_help(cmd, 1);
            return CLI_ERROR;
        }
        o->pos[o->npos++] = argv[i];
    }
    if (o->npos < npos_min) {
        cli_fail(cmd, "missing argument");
        cli_help(cmd, 1);
        return CLI_ERROR;
    }
    if (allow & CLI_NEED_DATA) {
        if (!o->data) o->data = getenv("KITH_DATA");
        if (!o->data || !*o->data) {
            cli_fail(cmd, "--data DIR is required");
            cli_help(cmd, 1);
            return CLI_ERROR;
        }
    }
    if (log_get_level() == LOG_INFO && !getenv("KITH_LOG")) log_set_level(LOG_WARN);
    return -1;
}
