#include "base/log.h"

#include "base/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* ---- the asynchronous sink ---- */

#define ASYNC_CAP       (4u << 20)
#define ASYNC_PERIOD_MS 20

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    char *buf[2]; /* pending lines; the log thread writes out the other */
    size_t len;
    int cur, on, stop, writing;
} lg = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere to log a logging failure */
        p += w;
        n -= (size_t)w;
    }
}

/* With lg.mu held: writes out the pending lines on the caller's thread,
 * after the log thread finished what it took (so lines keep their order). */
static void flush_locked(void)
{
    while (lg.writing)
        pthread_cond_wait(&lg.cv, &lg.mu);
    write_all(lg.buf[lg.cur], lg.len);
    lg.len = 0;
}

static void *log_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lg.mu);
    for (;;) {
        if (!lg.len && !lg.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += ASYNC_PERIOD_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&lg.cv, &lg.mu, &ts);
            continue;
        }
        if (!lg.len) break; /* stopping, all written */
        char *p = lg.buf[lg.cur];
        size_t n = lg.len;
        lg.cur ^= 1;
        lg.len = 0;
        lg.writing = 1;
        pthread_mutex_unlock(&lg.mu);
        write_all(p, n);
        /* A log file's pages are sent to the disk as they are written, not
         * left to pile up for the kernel's periodic flush: a burst of
         * hundreds of MiB of log writeback made the stores' fdatasync
         * wait behind it for a tenth of a second. Not a sync: it does not
         * wait. Fails harmlessly on a pipe or terminal. */
        sync_file_range(STDERR_FILENO, 0, 0, SYNC_FILE_RANGE_WRITE);
        pthread_mutex_lock(&lg.mu);
        lg.writing = 0;
        pthread_cond_broadcast(&lg.cv);
        if (!lg.stop) {
            /* let lines gather: one write(2) per period, not per line */
            pthread_mutex_unlock(&lg.mu);
            struct timespec nap = {0, ASYNC_PERIOD_MS * 1000000L};
            nanosleep(&nap, NULL);
            pthread_mutex_lock(&lg.mu);
        }
    }
    pthread_mutex_unlock(&lg.mu);
    return NULL;
}

void log_async_start(void)
{
    pthread_mutex_lock(&lg.mu);
    if (!lg.on) {
        lg.buf[0] = malloc(ASYNC_CAP);
        lg.buf[1] = malloc(ASYNC_CAP);
        lg.stop = 0;
        if (lg.buf[0] && lg.buf[1] && pthread_create(&lg.thread, NULL, log_thread, NULL) == 0) {
            static int registered;
            if (!registered++) atexit(log_async_stop); /* every exit path writes it all out */
            lg.on = 1;
        } else {
            free(lg.buf[0]);
            free(lg.buf[1]);
            lg.buf[0] = lg.buf[1] = NULL;
        }
    }
    pthread_mutex_unlock(&lg.mu);
}

void log_async_stop(void)
{
    pthread_mutex_lock(&lg.mu);
    if (!lg.on) {
        pthread_mutex_unlock(&lg.mu);
        return;
    }
    lg.stop = 1;
    pthread_cond_broadcast(&lg.cv);
    pthread_mutex_unlock(&lg.mu);
    pthread_join(lg.thread, NULL);
    pthread_mutex_lock(&lg.mu);
    flush_locked();
    lg.on = 0;
    free(lg.buf[0]);
    free(lg.buf[1]);
    lg.buf[0] = lg.buf[1] = NULL;
    pthread_mutex_unlock(&lg.mu);
}

/* Every write(2) of the process's log happens under lg.mu, so lines never
 * interleave, whatever their length and wherever stderr goes. */
static void emit(enum log_level level, const char *line, size_t n)
{
    pthread_mutex_lock(&lg.mu);
    if (!lg.on) {
        write_all(line, n);
    } else if (level >= LOG_WARN || n > ASYNC_CAP / 2) {
        flush_locked();
        write_all(line, n);
    } else {
        if (lg.len + n > ASYNC_CAP) flush_locked(); /* the disk is behind: wait for it */
        memcpy(lg.buf[lg.cur] + lg.len, line, n);
        lg.len += n;
        if (lg.len > ASYNC_CAP / 2) pthread_cond_signal(&lg.cv);
    }
    pthread_mutex_unlock(&lg.mu);
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
    emit(level, line, n);
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

void log_lines(const char *lines, size_t n)
{
    if (n && log_get_level() <= LOG_INFO) emit(LOG_INFO, lines, n);
}

void log_kv(enum log_level level, const char *comp, const char *kv)
{
    if (level < log_get_level()) return;
    log_write_line(level, comp, kv, 0);
}
