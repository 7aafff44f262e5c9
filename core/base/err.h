/*
 * base/err: error codes and the thread-local diagnostic.
 *
 * Every fallible function returns int: 0 on success, a negative KITH_E* code on
 * failure, and records what went wrong with err_set() in a diagnostic that
 * belongs to the calling thread. A pointer-returning function returns NULL only
 * with a diagnostic set. Validation failures also list the offending fields.
 */
#ifndef KITH_BASE_ERR_H
#define KITH_BASE_ERR_H

#include <stddef.h>

enum {
    KITH_OK = 0,
    KITH_EINVAL = -1,      /* bad argument, request or input */
    KITH_ENOTFOUND = -2,   /* no such record, collection, key, ... */
    KITH_EEXIST = -3,      /* already exists, or a unique value is taken */
    KITH_ECONFLICT = -4,   /* stale version, reused idempotency key */
    KITH_EVALIDATION = -5, /* a record breaks its schema; see the field list */
    KITH_EIO = -6,         /* operating system or LMDB I/O failure */
    KITH_ENOSPC = -7,      /* disk or map cannot grow */
    KITH_ECORRUPT = -8,    /* checksum mismatch, unreadable environment */
    KITH_ELOCKED = -9,     /* held by another process */
    KITH_ENOMEM = -10,     /* a user-exceedable memory budget ran out */
    KITH_ELIMIT = -11,     /* a size or count limit was exceeded */
    KITH_EPERM = -12,      /* not allowed */
    KITH_EVETO = -13,      /* a before-hook refused the write */
    KITH_EBUSY = -14,      /* try again later */
    KITH_ESHUTDOWN = -15,  /* the component is stopping */
    KITH_EINTERNAL = -16,  /* a bug: an invariant did not hold */
    KITH_EHANDLER = -17,   /* a script or plugin handler failed (error, budget) */
};

#define ERR_MSG_MAX        512
#define ERR_FIELDS_MAX     32
#define ERR_FIELD_NAME_MAX 64
#define ERR_FIELD_MSG_MAX  160

typedef struct err_field {
    char name[ERR_FIELD_NAME_MAX];
    char msg[ERR_FIELD_MSG_MAX];
} err_field_t;

typedef struct err_diag {
    int code;
    char msg[ERR_MSG_MAX];
    int nfields;        /* entries used in fields[] */
    int fields_dropped; /* fields that did not fit */
    /* KITH_EEXIST: the id of the record the write conflicts with (a unique
     * value, or a rule's duplicate check), or "". Whoever answers a client
     * shows it only if the client may read that record. */
    char existing[32];
    err_field_t fields[ERR_FIELDS_MAX];
} err_diag_t;

/* Records code and a printf-style message for this thread, clearing the field
 * list and the existing record. Returns code, so `return err_set(KITH_EINVAL, "...")` reads well. */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "<prefix>: ", keeping code and fields.
 * Returns the current code. */
int err_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends one offending field to this thread's diagnostic. */
void err_field_add(const char *field, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Names the record this thread's conflict is with (err_diag_t.existing). */
void err_existing(const char *id);

/* The calling thread's diagnostic; valid until the thread's next err_* call. */
const err_diag_t *err_last(void);

/* Copies the calling thread's diagnostic into dst (to carry it across threads). */
void err_save(err_diag_t *dst);

/* Makes src the calling thread's diagnostic; returns src->code. */
int err_restore(const err_diag_t *src);

void err_clear(void);

/* Stable short name of a code ("not_found", "validation", ...). */
const char *err_name(int code);

/* Maps an errno value to a KITH_E* code. */
int err_from_errno(int e);

#endif
