/*
 * base/file: whole small files (scripts, test files) read with a bound, and
 * where the running executable lives (for files installed beside it).
 */
#ifndef KITH_BASE_FILE_H
#define KITH_BASE_FILE_H

#include <stddef.h>

/* Reads what is left of fd (not closed) into a NUL-terminated buffer
 * (free()), *len its length. A file of more than max bytes, counted as it is
 * read (a file that grows is refused too), is KITH_ELIMIT; a read error its
 * errno's code. NULL with err set ("name: ...") on failure. */
char *file_read_fd(int fd, const char *name, size_t max, size_t *len);

/* The same for the file at path, which must open for reading. */
char *file_read(const char *path, size_t max, size_t *len);

/* The directory of the running executable, into out (n bytes): 0, or -1. */
int file_exe_dir(char *out, size_t n);

#endif
