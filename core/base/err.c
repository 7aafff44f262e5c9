#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local err_diag_t tls_diag;

int err_set(int code, const char *fmt, ...)
{
    va_list ap;
    tls_diag.code = code;
    tls_diag.nfields = 0;
    tls_diag.fields_dropped = 0;
    tls_diag.existing[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(tls_diag.msg, sizeof tls_diag.msg, fmt, ap);
    va_end(ap);
    return code;
}

int err_wrap(const char *fmt, ...)
{
    char old[ERR_MSG_MAX];
    va_list ap;
    memcpy(old, tls_diag.msg, sizeof old);
    va_start(ap, fmt);
    int n = vsnprintf(tls_diag.msg, sizeof tls_diag.msg, fmt, ap);
    va_end(ap);
    /* Append ": <old message>" to whatever room the prefix left. */
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used < sizeof tls_diag.msg - 1) {
        size_t room = sizeof tls_diag.msg - used;
        size_t ol = strnlen(old, sizeof old - 1);
        if (room > 2) {
            tls_diag.msg[used] = ':';
            tls_diag.msg[used + 1] = ' ';
            size_t c = ol < room - 3 ? ol : room - 3;
            memcpy(tls_diag.msg + used + 2, old, c);
            tls_diag.msg[used + 2 + c] = '\0';
        }
    }
    return tls_diag.code;
}

void err_field_add(const char *field, const char *fmt, ...)
{
    if (tls_diag.nfields >= ERR_FIELDS_MAX) {
        tls_diag.fields_dropped++;
        return;
    }
    err_field_t *f = &tls_diag.fields[tls_diag.nfields++];
    snprintf(f->name, sizeof f->name, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
}

void err_existing(const char *id)
{
    snprintf(tls_diag.existing, sizeof tls_diag.existing, "%s", id ? id : "");
}

const err_diag_t *err_last(void)
{
    return &tls_diag;
}

void err_save(err_diag_t *dst)
{
    dst->code = tls_diag.code;
    memcpy(dst->msg, tls_diag.msg, sizeof dst->msg);
    dst->nfields = tls_diag.nfields;
    dst->fields_dropped = tls_diag.fields_dropped;
    memcpy(dst->existing, tls_diag.existing, sizeof dst->existing);
    memcpy(dst->fields, tls_diag.fields, sizeof(err_field_t) * (size_t)tls_diag.nfields);
}

int err_restore(const err_diag_t *src)
{
    tls_diag.code = src->code;
    memcpy(tls_diag.msg, src->msg, sizeof tls_diag.msg);
    tls_diag.nfields = src->nfields;
    tls_diag.fields_dropped = src->fields_dropped;
    memcpy(tls_diag.existing, src->existing, sizeof tls_diag.existing);
    memcpy(tls_diag.fields, src->fields, sizeof(err_field_t) * (size_t)src->nfields);
    return src->code;
}

void err_clear(void)
{
    tls_diag.code = 0;
    tls_diag.msg[0] = '\0';
    tls_diag.nfields = 0;
    tls_diag.fields_dropped = 0;
    tls_diag.existing[0] = '\0';
}

const char *err_name(int code)
{
    switch (code) {
    case KITH_OK:
        return "ok";
    case KITH_EINVAL:
        return "invalid";
    case KITH_ENOTFOUND:
        return "not_found";
    case KITH_EEXIST:
        return "exists";
    case KITH_ECONFLICT:
        return "conflict";
    case KITH_EVALIDATION:
        return "validation";
    case KITH_EIO:
        return "io";
    case KITH_ENOSPC:
        return "no_space";
    case KITH_ECORRUPT:
        return "corrupt";
    case KITH_ELOCKED:
        return "locked";
    case KITH_ENOMEM:
        return "no_memory";
    case KITH_ELIMIT:
        return "limit";
    case KITH_EPERM:
        return "forbidden";
    case KITH_EVETO:
        return "vetoed";
    case KITH_EBUSY:
        return "busy";
    case KITH_ESHUTDOWN:
        return "shutdown";
    case KITH_EINTERNAL:
        return "internal";
    case KITH_EHANDLER:
        return "handler_failed";
    default:
        return "unknown";
    }
}

int err_from_errno(int e)
{
    switch (e) {
    case 0:
        return KITH_OK;
    case ENOENT:
    case ENOTDIR:
        return KITH_ENOTFOUND;
    case EEXIST:
    case ENOTEMPTY:
        return KITH_EEXIST;
    case EACCES:
    case EPERM:
    case EROFS:
        return KITH_EPERM;
    case ENOSPC:
    case EDQUOT:
        return KITH_ENOSPC;
    case EAGAIN:
    case EBUSY:
        return KITH_ELOCKED;
    case ENOMEM:
        return KITH_ENOMEM;
    case EINVAL:
        return KITH_EINVAL;
    default:
        return KITH_EIO;
    }
}
