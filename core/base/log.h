/*
 * base/log: one line per event on stderr, in logfmt:
 *   time=2026-11-22T10:00:00.123Z level=info comp=store msg="opened" dir=/x
 * Each line is written with a single write(2), so lines from different threads
 * never interleave. Callable from any thread.
 */
#ifndef KITH_BASE_LOG_H
#define KITH_BASE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Lines below level are dropped. Default LOG_INFO; KITH_LOG=debug|info|warn|error|off
 * in the environment overrides it at the first log call. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* comp names the module; fmt is the human message (quoted and escaped for you). */
void log_msg(enum log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes an already formatted logfmt tail: "time=.. level=.. comp=.. <kv>". */
void log_kv(enum log_level level, const char *comp, const char *kv);

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
