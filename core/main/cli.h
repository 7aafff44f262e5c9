/*
 * main/cli: what the `kith` commands share — option parsing, messages and
 * exit codes. Errors are one line on stderr, "kith <command>: <what>", and
 * exit code 2 with nothing modified; `kith check` exits 1 when it finds
 * inconsistencies.
 */
#ifndef KITH_MAIN_CLI_H
#define KITH_MAIN_CLI_H

#include <getopt.h>

#define CLI_OK      0
#define CLI_PROBLEM 1 /* the command ran and found something wrong */
#define CLI_ERROR   2 /* bad usage, or the command could not run */

typedef struct cli_cmd {
    const char *name;  /* "workspace create" */
    const char *usage; /* one-line synopsis after "kith " */
    const char *help;  /* further lines for --help */
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
} cli_cmd_t;

/* Prints "kith <cmd>: <message>" to stderr; returns CLI_ERROR. */
int cli_fail(const cli_cmd_t *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with the thread's diagnostic appended. */
int cli_fail_err(const cli_cmd_t *cmd, const char *what);
void cli_help(const cli_cmd_t *cmd, int to_stderr);

#define CLI_POS_MAX 64 /* positional arguments a command may take */

/* Options every command understands, parsed by cli_parse. */
typedef struct cli_opts {
    const char *data;      /* --data DIR (or $KITH_DATA) */
    const char *workspace; /* --workspace NAME */
    const char *role;      /* --role ROLE */
    const char *label;     /* --label TEXT */
    const char *user;      /* --user ID */
    const char *team;      /* --team NAME */
    const char *listen;    /* --listen HOST:PORT */
    const char *threads;   /* --threads N */
    int plain;             /* --plain */
    const char *collection, *map, *upsert, *delimiter, *format, *filter, *fields, *out;
    const char *plugins; /* --plugins a,b (init) */
    char *pos[CLI_POS_MAX]; /* positional arguments */
    int npos;
} cli_opts_t;

enum {
    CLI_NEED_DATA = 1,
    CLI_ALLOW_WORKSPACE = 2,
    CLI_ALLOW_ROLE = 4,
    CLI_ALLOW_LABEL = 8,
    CLI_ALLOW_USER = 16,  /* --user and --team */
    CLI_ALLOW_SERVE = 32, /* --listen, --plain, --threads */
    CLI_ALLOW_IO = 64,    /* --collection, --map, --upsert, --delimiter, --format, --filter,
                             --fields, --out */
    CLI_ALLOW_PLUGINS = 128, /* --plugins */
};

/* Parses argv (argv[0] is the command word). Returns -1 to go on, or an exit
 * code (0 after --help, CLI_ERROR after a bad argument). npos_max: how many
 * positional arguments the command takes. */
int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, int allow, int npos_min, int npos_max,
              cli_opts_t *o);

/* Removes path and everything under it (cmd_init.c). */
void cli_rmtree(const char *path);

int cmd_init(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_workspace_create(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_workspace_list(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_key_create(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_check(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_backup(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_serve(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_import(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_export(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_test(const cli_cmd_t *cmd, int argc, char **argv);
int cmd_plugins(const cli_cmd_t *cmd, int argc, char **argv);

#endif
