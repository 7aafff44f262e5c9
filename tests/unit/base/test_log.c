/* Tests core/base/log.c: the asynchronous sink loses no line and keeps each
 * thread's lines in order, also when the lines outgrow its buffer; warnings
 * are on disk at once, after the lines logged before them; stopping writes
 * out the rest; the level filter holds. stderr is redirected to a file. */
#include "testutil.h"

#include "base/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define LINES   25000 /* ~10 MiB in all: more than twice the sink's buffer */

static char path[] = "/tmp/kith-test-log-XXXXXX";
static int saved_stderr = -1;

static int to_file(void **state)
{
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

static int back(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    unlink(path);
    return 0;
}

static char *slurp(size_t *n)
{
    char *s = tu_slurp(path, n);
    assert_non_null(s);
    return s;
}

static void truncate_log(void)
{
    assert_int_equal(ftruncate(STDERR_FILENO, 0), 0);
    lseek(STDERR_FILENO, 0, SEEK_SET);
}

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++) {
        log_info("test", "thread %d line %d padding padding padding padding padding padding", t,
                 i);
        if (i == LINES / 2) log_warn("test", "thread %d warns at %d", t, i);
    }
    return NULL;
}

static void no_loss_in_order(void **state)
{
    (void)state;
    truncate_log();
    log_set_level(LOG_INFO);
    log_async_start();
    log_async_start(); /* idempotent */
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    log_async_stop();

    size_t n;
    char *s = slurp(&n);
    int next[THREADS] = {0}, warned[THREADS] = {0};
    size_t lines = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        assert_non_null(strstr(line, "time="));
        int t, i;
        const char *m = strstr(line, "msg=\"thread ");
        assert_non_null(m);
        if (sscanf(m, "msg=\"thread %d line %d", &t, &i) == 2) {
            assert_in_range(t, 0, THREADS - 1);
            assert_int_equal(i, next[t]); /* none lost, none twice, in order */
            next[t]++;
            assert_non_null(strstr(line, "level=info"));
        } else {
            assert_int_equal(sscanf(m, "msg=\"thread %d warns at %d", &t, &i), 2);
            assert_int_equal(i, LINES / 2);
            assert_int_equal(next[t], LINES / 2 + 1); /* after the line before it */
            warned[t]++;
        }
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(next[t], LINES);
        assert_int_equal(warned[t], 1);
    }
    assert_int_equal(lines, (size_t)THREADS * (LINES + 1));
    free(s);
}

static void warnings_are_written_at_once(void **state)
{
    (void)state;
    truncate_log();
    log_async_start();
    log_info("test", "pending info");
    log_error("test", "an error");
    size_t n;
    char *s = slurp(&n); /* before any stop or flush */
    const char *a = strstr(s, "pending info"), *b = strstr(s, "an error");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    free(s);
    log_info("test", "written out by stop");
    log_async_stop();
    log_async_stop(); /* harmless twice */
    s = slurp(&n);
    assert_non_null(strstr(s, "written out by stop"));
    free(s);
}

static void levels_filter(void **state)
{
    (void)state;
    truncate_log();
    log_set_level(LOG_WARN);
    log_info("test", "dropped");
    log_warn("test", "kept \"quoted\"\nnext");
    log_set_level(LOG_INFO);
    size_t n;
    char *s = slurp(&n);
    assert_null(strstr(s, "dropped"));
    /* quotes escaped, the newline folded: still one line */
    assert_non_null(strstr(s, "level=warn comp=test msg=\"kept \\\"quoted\\\" next\"\n"));
    assert_int_equal(s[n - 1], '\n');
    assert_null(memchr(s, '\n', n - 1));
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_loss_in_order),
        cmocka_unit_test(warnings_are_written_at_once),
        cmocka_unit_test(levels_filter),
    };
    return cmocka_run_group_tests(tests, to_file, back);
}
