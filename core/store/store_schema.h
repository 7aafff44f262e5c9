/*
 * store/store_schema: collections, fields and their indexes.
 *
 * A schema set is immutable once published and reference counted: readers
 * take the set that matches their snapshot, the writer builds a new set for
 * each change. Definitions are JSON (README.md); store_schema_parse_coll
 * validates one, store_coll_to_json renders it back.
 */
#ifndef KITH_STORE_SCHEMA_H
#define KITH_STORE_SCHEMA_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX   64  /* collection and field names: < 64 bytes */
#define STORE_FIELDS_MAX 256 /* fields per collection */
#define STORE_ENUM_MAX   256 /* values per enum */
#define STORE_STRING_MAX 4096
#define STORE_TEXT_MAX   ((size_t)256 * 1024)
#define STORE_ARRAY_MAX  1000
#define STORE_RECORD_MAX ((size_t)1024 * 1024)

enum store_type {
    ST_NONE = 0,
    ST_STRING,
    ST_TEXT,
    ST_INT,
    ST_NUMBER,
    ST_BOOL,
    ST_DATETIME,
    ST_DATE,
    ST_ENUM,
    ST_EMAIL,
    ST_PHONE,
    ST_MONEY,
    ST_REF,
    ST_ARRAY,
    ST_OBJECT,
    ST__COUNT
};

enum store_field_flag {
    SF_REQUIRED = 1u << 0,
    SF_UNIQUE = 1u << 1,
    SF_INDEXED = 1u << 2,
    SF_SEARCHABLE = 1u << 3, /* case-insensitive prefix index */
    SF_SENSITIVE = 1u << 4,  /* masked for roles without unmask */
    /* a ref to the record's own collection: a record with it set stands for
     * that one (merged into it), and GET of it answers 308 to it */
    SF_REDIRECT = 1u << 5,
};

enum store_index_state {
    IDX_NONE = 0,
    IDX_BUILDING = 1, /* maintained on write, being filled; not used by queries */
    IDX_READY = 2,
};

/* Pseudo-fields every record has; usable in filters and sorts. */
enum store_pseudo {
    SP_NONE = 0,
    SP_ID,
    SP_VERSION,
    SP_CREATED_AT,
    SP_UPDATED_AT,
};

typedef struct store_field {
    char name[STORE_NAME_MAX];
    int type;       /* enum store_type */
    int item_type;  /* arrays: element type (a scalar type) */
    unsigned flags; /* enum store_field_flag */
    int pseudo;     /* enum store_pseudo, for the built-in fields */
    char **values;  /* enum: allowed values */
    size_t nvalues;
    char ref[STORE_NAME_MAX]; /* ref: target collection */
    size_t max_length;        /* strings: bytes; arrays: items */
    json_t *dflt;             /* default applied on create, or NULL */
    char *description;        /* for humans and OpenAPI, or NULL */
    uint32_t index_id;        /* value index (indexed or unique), 0 if none */
    int index_state;
    uint32_t prefix_id; /* searchable prefix index, 0 if none */
    int prefix_state;
} store_field_t;

typedef struct store_coll {
    char name[STORE_NAME_MAX];
    uint32_t id;      /* stable, never reused */
    uint32_t version; /* bumped by every definition change */
    store_field_t *fields;
    size_t nfields;
} store_coll_t;

typedef struct store_schema {
    atomic_int refs;
    uint64_t gen; /* changes whenever any collection or index state changes */
    store_coll_t **colls;
    size_t ncolls;
} store_schema_t;

const char *store_type_name(int type);
int store_type_from_name(const char *name);
/* True for types an index can hold (everything but text and object). */
int store_type_indexable(int type);

const store_coll_t *store_schema_coll(const store_schema_t *s, const char *name);
const store_coll_t *store_schema_coll_by_id(const store_schema_t *s, uint32_t id);
const store_field_t *store_coll_field(const store_coll_t *c, const char *name);
/* A field or one of the pseudo-fields id, version, created_at, updated_at. */
const store_field_t *store_coll_field_or_pseudo(const store_coll_t *c, const char *name);

/* The definition as clients see it: {"name","version","fields":[...]} with each
 * index's state ("building" or "ready"). New reference. */
json_t *store_coll_to_json(const store_coll_t *c);

/* Checks a collection definition as PUT /v1/schema/{collection} takes it,
 * without storing it: 0, or KITH_EINVAL / KITH_EVALIDATION with a message. */
int store_schema_def_check(const json_t *def);

void store_schema_ref(store_schema_t *s);
void store_schema_unref(store_schema_t *s);

#endif
