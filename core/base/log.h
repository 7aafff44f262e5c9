/*
 * base/log: one line per event on stderr, in logfmt:
 *   time=2026-11-22T10:00:00.123Z level=info comp=store msg="opened" dir=/x
 * Each line is written with a single write(2), so lines from different threads
 * never interleave. Callable from any thread.
 *
 * A server calls log_async_start(): from then on info and debug lines go to
 * a buffer that a log thread writes out every 20 ms or when it is half full,
 * so a request's thread never waits on the disk (a write(2) to a file blocks
 * while the kernel throttles dirty pages, which stalled every connection of
 * an I/O loop for a tenth of a second under load). Nothing is dropped: when
 * the buffer is full the caller writes it out itself. Warnings and errors
 * write out what is pending and themselves at once, so they survive a crash.
 */
#ifndef KITH_BASE_LOG_H
#define KITH_BASE_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Lines below level are dropped. Default LOG_INFO; KITH_LOG=debug|info|warn|error|off
 * in the environment overrides it at the first log call. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* comp names the module; fmt is the human message (quoted and escaped for you). */
void log_msg(enum log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts the log thread (idempotent); log_async_stop() writes out what is
 * pending and joins it. Lines stay in order either way. */
void log_async_start(void);
void log_async_stop(void);

/* Writes whole info lines its caller formatted (the request log batches
 * them per I/O loop); dropped below LOG_INFO. */
void log_lines(const char *lines, size_t n);

/* Writes an already formatted logfmt tail: "time=.. level=.. comp=.. <kv>". */
void log_kv(enum log_level level, const char *comp, const char *kv);

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
