#include "base/log.h"

#include "base/timeutil.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static enum log_level log_level_from_env(void)
{
    const char *s = getenv("KITH_LOG");
    if (s) {
        for (int i = 0; i <= LOG_OFF; i++)
            if (strcmp(s, level_names[i]) == 0) return (enum log_level)i;
    }
    return LOG_INFO;
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = (int)log_level_from_env();
        atomic_store(&log_level, l);
    }
    return (enum log_level)l;
}

static void log_write_line(enum log_level level, const char *comp, const char *tail, int quoted)
{
    char line[2048];
    char ts[40];
    time_fmt_rfc3339(time_now_us(), ts, sizeof ts, 3);
    size_t n = (size_t)snprintf(line, sizeof line, "time=%s level=%s comp=%s %s", ts,
                                level_names[level], comp, quoted ? "msg=\"" : "");
    if (n >= sizeof line) n = sizeof line - 1;
    for (const char *p = tail; *p && n < sizeof line - 3; p++) {
        unsigned char c = (unsigned char)*p;
        if (quoted && (c == '"' || c == '\\')) {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            line[n++] = ' ';
        } else if (c < 0x20) {
            line[n++] = '?';
        } else {
            line[n++] = (char)c;
        }
    }
    if (quoted) line[n++] = '"';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_msg(enum log_level level, const char *comp, const char *fmt, ...)
{
    if (level < log_get_level()) return;
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_write_line(level, comp, msg, 1);
}

void log_kv(enum log_level level, const char *comp, const char *kv)
{
    if (level < log_get_level()) return;
    log_write_line(level, comp, kv, 0);
}
