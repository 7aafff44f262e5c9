/* Tests core/base/file.c: whole files read with a bound (exactly the bound,
 * one byte over, a file that grows while read, a missing file, NUL bytes
 * kept) and the directory of the running executable. */
#include "testutil.h"

#include "base/file.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_bytes(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void bounded_reads(void **state)
{
    (void)state;
    char dir[] = "/tmp/kith-file-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/f", dir);

    /* every length around the bound, with a NUL byte inside */
    char data[200001];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    data[7] = '\0';
    size_t lens[] = {0, 1, 99999, 100000, 100001, 200001};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        write_bytes(path, data, lens[k]);
        size_t len = 12345;
        char *p = file_read(path, 100000, &len);
        if (lens[k] <= 100000) {
            assert_non_null(p);
            assert_int_equal(len, lens[k]);
            assert_memory_equal(p, data, len);
            assert_int_equal(p[len], '\0');
            free(p);
        } else {
            assert_null(p);
            assert_int_equal(err_last()->code, KITH_ELIMIT);
            assert_non_null(strstr(err_last()->msg, "larger than 100000 bytes"));
        }
    }

    /* a pipe: no size to look at, the bytes are counted as they come */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], data, 4096), 4096);
    close(fds[1]);
    size_t len;
    assert_null(file_read_fd(fds[0], "pipe", 4095, &len));
    assert_int_equal(err_last()->code, KITH_ELIMIT);
    assert_non_null(strstr(err_last()->msg, "pipe: "));
    close(fds[0]);

    /* missing: the path and the reason */
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_null(file_read(path, 10, &len));
    assert_int_equal(err_last()->code, KITH_ENOTFOUND);
    assert_non_null(strstr(err_last()->msg, path));

    snprintf(path, sizeof path, "%s/f", dir);
    unlink(path);
    rmdir(dir);
}

static void exe_dir(void **state)
{
    (void)state;
    char d[PATH_MAX], self[PATH_MAX];
    assert_int_equal(file_exe_dir(d, sizeof d), 0);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    size_t dl = strlen(d);
    assert_memory_equal(self, d, dl);
    assert_int_equal(self[dl], '/');
    assert_null(strchr(self + dl + 1, '/'));
    /* too small a buffer is a refusal, not a truncated path */
    char tiny[4];
    assert_int_equal(file_exe_dir(tiny, sizeof tiny), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounded_reads),
        cmocka_unit_test(exe_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
