/* plugins/common/kp_sdk: see kp_sdk.h. */
#include "kp_sdk.h"

int kp_query_all(const kith_api_t *K, kith_txn_t *tx, const kith_query_t *q, kith_row_fn fn,
                 void *ud)
{
    kith_query_t page = *q;
    if (!page.limit) page.limit = 1000;
    page.cursor = NULL;
    char *cursor = NULL;
    int rc;
    do {
        char *next = NULL;
        page.cursor = cursor;
        rc = K->entity_query(tx, &page, fn, ud, &next);
        K->free(cursor);
        cursor = next;
    } while (rc == 0 && cursor);
    K->free(cursor);
    return rc;
}

int kp_problem(const kith_api_t *K, kith_response_t *res, int status, const char *type,
               const char *detail)
{
    K->respond_problem(res, status, type, detail);
    return 0;
}

int kp_is_number(const kith_api_t *K, const kith_json_t *v)
{
    int t = v ? K->json_type(v) : KITH_JSON_NULL;
    return t == KITH_JSON_INTEGER || t == KITH_JSON_REAL;
}
