#include "base/file.h"

#include "base/err.h"
#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *file_read_fd(int fd, const char *name, size_t max, size_t *len)
{
    /* one byte more than allowed is read, so a larger file is found */
    size_t cap = max < 65536 ? max + 1 : 65536, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            err_set(err_from_errno(e), "%s: %s", name, strerror(e));
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            free(buf);
            err_set(KITH_ELIMIT, "%s: larger than %zu bytes", name, max);
            return NULL;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *file_read(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_set(err_from_errno(e), "%s: %s", path, strerror(e));
        return NULL;
    }
    char *p = file_read_fd(fd, path, max, len);
    close(fd);
    return p;
}

int file_exe_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t r = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (r <= 0) return -1;
    exe[r] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';
    if ((size_t)snprintf(out, n, "%s", exe) >= n) return -1;
    return 0;
}
