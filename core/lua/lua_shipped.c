/*
 * lua_shipped: where Kith's own Lua lives (scripts/), and reading it safely.
 *
 * Two things read from there: require() in the sandbox (modules under lib/)
 * and the HTTP API that enables a shipped rule in a workspace. Both name a
 * file by a checked name, and the real path of what they open must still be
 * inside the directory, so neither a crafted name nor a symlink reaches any
 * other file.
 */
#include "lua/lua_host.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/file.h"
#include "base/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mbedtls/sha256.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef KITH_SOURCE_SCRIPTS_DIR
#define KITH_SOURCE_SCRIPTS_DIR "scripts"
#endif

#define LIB_DEPTH_MAX 4 /* lib/a/b/c/d.lua */

static char dir_default[PATH_MAX];
static char dir_override[PATH_MAX]; /* written only at startup (lua_scripts_dir_set) */
static pthread_once_t dir_once = PTHREAD_ONCE_INIT;

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void dir_find(void)
{
    char exe[PATH_MAX], cand[PATH_MAX + 32];
    if (file_exe_dir(exe, sizeof exe) == 0) {
        snprintf(cand, sizeof cand, "%s/../share/kith/scripts", exe);
        if (is_dir(cand) && realpath(cand, dir_default)) return;
    }
    if (!realpath(KITH_SOURCE_SCRIPTS_DIR, dir_default))
        snprintf(dir_default, sizeof dir_default, "%s", KITH_SOURCE_SCRIPTS_DIR);
}

const char *lua_scripts_dir(void)
{
    if (dir_override[0]) return dir_override;
    pthread_once(&dir_once, dir_find);
    return dir_default;
}

/* Kept resolved when it exists, so a read resolves only the file's path. */
void lua_scripts_dir_set(const char *dir)
{
    if (!dir || !dir[0] || !realpath(dir, dir_override))
        snprintf(dir_override, sizeof dir_override, "%s", dir ? dir : "");
}

char *lua_shipped_read(const char *rel, size_t *len)
{
    char path[PATH_MAX * 2], real[PATH_MAX];
    const char *root = lua_scripts_dir(); /* resolved, unless it does not exist */
    snprintf(path, sizeof path, "%s/%s", root, rel);
    size_t rl = strlen(root);
    if (!realpath(path, real) || strncmp(real, root, rl) != 0 || real[rl] != '/') {
        err_set(KITH_ENOTFOUND, "%s: no such file in %s", rel, root);
        return NULL;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        err_set(KITH_ENOTFOUND, "%s: not a readable file", rel);
        return NULL;
    }
    if (st.st_size > (off_t)LUA_SCRIPT_MAX) {
        close(fd);
        err_set(KITH_ELIMIT, "%s: larger than %u bytes", rel, LUA_SCRIPT_MAX);
        return NULL;
    }
    char *buf = file_read_fd(fd, rel, LUA_SCRIPT_MAX, len);
    close(fd);
    return buf;
}

static int segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

int lua_module_path(const char *name, char *out, size_t cap)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > LUA_SCRIPT_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
        return KITH_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '.' ? name[i + 1] == '.' : !segment_char(name[i])) return KITH_EINVAL;
    }
    if (n + sizeof "lib/.lua" > cap) return KITH_EINVAL;
    memcpy(out, "lib/", 4);
    for (size_t i = 0; i < n; i++)
        out[4 + i] = name[i] == '.' ? '/' : name[i];
    memcpy(out + 4 + n, ".lua", 5);
    return 0;
}

/* Appends text[0..n) to out (cap bytes with its NUL), valid UTF-8 only
 * (another byte becomes '?'), stopping before a character that would not
 * fit. Returns 0 when out is full. */
static int append_utf8(char *out, size_t cap, size_t *o, const char *text, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq_len((const uint8_t *)text + i, n - i);
        const char *c = l ? text + i : "?";
        size_t cl = l ? l : 1;
        if (*o + cl >= cap) return 0;
        memcpy(out + *o, c, cl);
        *o += cl;
        i += cl;
    }
    out[*o] = '\0';
    return 1;
}

/* The description: the first paragraph of the comment lines the file starts
 * with ("-- text"), joined by spaces. */
static void describe(const char *src, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < len;) {
        const char *eol = memchr(src + i, '\n', len - i);
        size_t end = eol ? (size_t)(eol - src) : len, next = eol ? end + 1 : len;
        const char *p = src + i;
        size_t n = end - i;
        if (n < 2 || p[0] != '-' || p[1] != '-' || (n >= 4 && p[2] == '[' && p[3] == '[')) break;
        while (n && *p == '-') /* "--", and "---" doc comments */
            p++, n--;
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
            n--;
        if (n == 0) {
            if (o) break; /* a blank comment line ends the first paragraph */
        } else if ((o && !append_utf8(out, cap, &o, " ", 1)) || !append_utf8(out, cap, &o, p, n)) {
            break;
        }
        i = next;
    }
}

void lua_shipped_describe(const char *name, const char *src, size_t len, lua_shipped_t *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", name);
    describe(src, len, info->description, sizeof info->description);
    uint8_t h[32];
    mbedtls_sha256_ret((const unsigned char *)src, len, h, 0);
    hex_encode(h, sizeof h, info->sha256);
    info->len = len;
}

typedef struct list {
    lua_shipped_t *v;
    size_t n, cap;
} list_t;

/* Adds the file rel (relative to the scripts directory) as name. */
static void list_add(list_t *l, const char *name, const char *rel)
{
    size_t len;
    char *src = lua_shipped_read(rel, &len);
    if (!src) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    lua_shipped_describe(name, src, len, &l->v[l->n++]);
    free(src);
}

/* The modules under lib/<sub> (sub "" or "a/b"), named prefix + base. */
static void list_modules(list_t *l, const char *sub, const char *prefix, int depth)
{
    char path[PATH_MAX];
    int k = snprintf(path, sizeof path, "%s/lib%s%s", lua_scripts_dir(), sub[0] ? "/" : "", sub);
    if (k < 0 || (size_t)k >= sizeof path) return;
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.') continue;
        char name[LUA_SCRIPT_NAME_MAX * 2], rel[PATH_MAX], check[PATH_MAX];
        int lua = n > 4 && strcmp(e->d_name + n - 4, ".lua") == 0;
        snprintf(name, sizeof name, "%s%.*s", prefix, (int)(lua ? n - 4 : n), e->d_name);
        if (lua) {
            /* only what require would serve under that name */
            snprintf(rel, sizeof rel, "lib%s%s/%s", sub[0] ? "/" : "", sub, e->d_name);
            if (lua_module_path(name, check, sizeof check) == 0 && strcmp(check, rel) == 0)
                list_add(l, name, rel);
        } else if (depth < LIB_DEPTH_MAX && strlen(name) < LUA_SCRIPT_NAME_MAX) {
            char sub2[PATH_MAX], prefix2[LUA_SCRIPT_NAME_MAX * 2 + 1], full[PATH_MAX * 2];
            snprintf(sub2, sizeof sub2, "%s%s%s", sub, sub[0] ? "/" : "", e->d_name);
            snprintf(prefix2, sizeof prefix2, "%s.", name);
            snprintf(full, sizeof full, "%s/%s", path, e->d_name);
            if (is_dir(full)) list_modules(l, sub2, prefix2, depth + 1);
        }
    }
    closedir(d);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const lua_shipped_t *)a)->name, ((const lua_shipped_t *)b)->name);
}

int lua_shipped_list(int modules, lua_shipped_t **out)
{
    list_t l = {0};
    if (modules) {
        list_modules(&l, "", "", 1);
    } else {
        DIR *d = opendir(lua_scripts_dir());
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                if (n <= 4 || strcmp(e->d_name + n - 4, ".lua") != 0) continue;
                char name[LUA_SCRIPT_NAME_MAX + 1];
                if (n - 4 > LUA_SCRIPT_NAME_MAX) continue;
                snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
                if (lua_script_name_ok(name)) list_add(&l, name, e->d_name);
            }
            closedir(d);
        }
    }
    if (l.n) qsort(l.v, l.n, sizeof *l.v, by_name);
    *out = l.v;
    return (int)l.n;
}
