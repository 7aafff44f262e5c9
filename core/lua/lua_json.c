/*
 * lua_json: JSON values to Lua and back, and kith.json.
 *
 * Objects and arrays become tables; JSON null is kith.json.null (so a field
 * can be cleared by a patch). Back to JSON: a table whose keys are exactly
 * 1..n (n >= 1) is an array, any other table an object (string keys only);
 * integers stay integers; NaN, infinities, functions and deeper than 64
 * levels are errors. Strings must be UTF-8.
 */
#include "lua/lua_int.h"

#include "base/codec.h"
#include "base/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VALUES_MAX 200000 /* a table shared along many paths is walked once per path */

static char null_key; /* its address is kith.json.null */

void lj_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, &null_key);
}

int lj_is_null(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == &null_key;
}

static void push_depth(lua_State *L, const json_t *v, int depth)
{
    luaL_checkstack(L, 4, "JSON too deep");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        lua_createtable(L, 0, (int)json_object_size(v));
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            push_depth(L, x, depth + 1);
            lua_setfield(L, -2, k);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_depth(L, json_array_get(v, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lj_push_null(L);
        break;
    }
}

void lj_push(lua_State *L, const json_t *v)
{
    if (!v)
        lua_pushnil(L);
    else
        push_depth(L, v, 0);
}

static json_t *to_json(lua_State *L, int idx, int depth, const char **why, size_t *left)
{
    idx = lua_absindex(L, idx);
    if ((*left)-- == 0) {
        *why = "more than 200,000 values";
        return NULL;
    }
    if (depth > JSON_DEPTH_MAX) {
        *why = "nested deeper than 64 levels (a cycle?)";
        return NULL;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx))) {
            *why = "NaN and infinities are not JSON";
            return NULL;
        }
        return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_t *j = json_stringn(s, n);
        if (!j) *why = "a string is not UTF-8";
        return j;
    }
    case LUA_TLIGHTUSERDATA:
        if (lj_is_null(L, idx)) return json_null();
        break;
    case LUA_TTABLE: {
        luaL_checkstack(L, 4, "JSON too deep");
        /* an array if the keys are exactly 1..n */
        lua_Integer n = 0, count = 0;
        int array = 1;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            count++;
            if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
                lua_Integer k = lua_tointeger(L, -2);
                if (k > n) n = k;
                if (k < 1) array = 0;
            } else {
                array = 0;
            }
            lua_pop(L, 1);
        }
        if (count == 0) return json_object();
        if (array && n == count) {
            json_t *a = json_array();
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, i);
                json_t *x = to_json(L, -1, depth + 1, why, left);
                lua_pop(L, 1);
                if (!x) {
                    json_decref(a);
                    return NULL;
                }
                json_array_append_new(a, x);
            }
            return a;
        }
        json_t *o = json_object();
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                json_decref(o);
                *why = "an object's keys must be strings";
                return NULL;
            }
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            json_t *x = to_json(L, -1, depth + 1, why, left);
            lua_pop(L, 1);
            if (!x || strlen(k) != kl || json_object_setn_new(o, k, kl, x)) {
                if (x) *why = "an object key is not UTF-8";
                lua_pop(L, 1);
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default:
        break;
    }
    *why = "functions, userdata and threads are not JSON";
    return NULL;
}

json_t *lj_to_json(lua_State *L, int idx, const char **why)
{
    size_t left = VALUES_MAX;
    return to_json(L, idx, 0, why, &left);
}

/* Whether the Lua value at idx equals old, without allocating for strings
 * (most fields of a record); other types compare as lj_to_json would make them. */
static int same_value(lua_State *L, int idx, const json_t *old, const char **why, int *bad)
{
    if (!old) return 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return json_is_string(old) && json_string_length(old) == n &&
               memcmp(json_string_value(old), s, n) == 0;
    }
    if (lua_type(L, idx) == LUA_TBOOLEAN)
        return json_is_boolean(old) && json_is_true(old) == lua_toboolean(L, idx);
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (lua_isinteger(L, idx))
            return json_is_integer(old) && json_integer_value(old) == lua_tointeger(L, idx);
        double d = lua_tonumber(L, idx);
        return isfinite(d) && json_is_real(old) && json_real_value(old) == d;
    }
    json_t *v = lj_to_json(L, idx, why);
    if (!v) {
        *bad = 1;
        return 0;
    }
    int eq = json_equal(v, old);
    json_decref(v);
    return eq;
}

int lj_merge_object(lua_State *L, int idx, json_t *rec, int *changed, const char **why)
{
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) {
        *why = "not an object";
        return -1;
    }
    size_t orig = json_object_size(rec), seen = 0, dropped = 0;
    int bad = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            *why = "its keys must be field names";
            return -1;
        }
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        if (strlen(k) != kl) {
            lua_pop(L, 2);
            *why = "a field name contains a NUL byte";
            return -1;
        }
        json_t *old = json_object_get(rec, k);
        if (lj_is_null(L, -1)) { /* kith.json.null: no value */
            if (old) {
                json_object_del(rec, k);
                dropped++;
                *changed = 1;
            }
        } else {
            if (old) seen++;
            if (!same_value(L, -1, old, why, &bad)) {
                json_t *v = bad ? NULL : lj_to_json(L, -1, why);
                if (!v) {
                    lua_pop(L, 2);
                    return -1;
                }
                json_object_set_new(rec, k, v);
                *changed = 1;
            }
        }
        lua_pop(L, 1);
    }
    if (seen + dropped < orig) {
        /* fields set to nil in Lua: the ones the table no longer has */
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(rec, tmp, k, v)
        {
            lua_pushstring(L, k);
            int gone = lua_rawget(L, idx) == LUA_TNIL;
            lua_pop(L, 1);
            if (gone) {
                json_object_del(rec, k);
                *changed = 1;
            }
        }
    }
    return 0;
}

/* ---- JSON text straight to Lua ----
 * Stored records are compact JSON the store wrote; parsing them into jansson
 * values only to convert those into tables cost most of kith.entity.get.
 * This reader builds the tables directly. It accepts strict JSON (RFC 8259:
 * no leading zeros, escapes and UTF-8 checked, no trailing garbage) and
 * returns -1 on anything else, so callers can fall back to json_parse. */

typedef struct jr {
    const char *p, *end;
    int depth;
} jr_t;

static void jr_ws(jr_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int jr_hex4(jr_t *r, unsigned *out)
{
    if (r->end - r->p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = r->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    r->p += 4;
    *out = v;
    return 0;
}



/* Pushes the string at r->p (after its opening quote). */
static int jr_string(lua_State *L, jr_t *r)
{
    const char *s = r->p;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20 &&
           (unsigned char)*r->p < 0x80)
        r->p++;
    if (r->p < r->end && *r->p == '"') { /* plain ASCII: the common case */
        lua_pushlstring(L, s, (size_t)(r->p - s));
        r->p++;
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, s, (size_t)(r->p - s));
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20) return -1;
        if (c >= 0x80) {
            size_t n = utf8_seq_len((const uint8_t *)r->p, (size_t)(r->end - r->p));
            if (!n) return -1;
            luaL_addlstring(&b, r->p, n);
            r->p += n;
            continue;
        }
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            r->p++;
            continue;
        }
        if (++r->p >= r->end) return -1;
        char e = *r->p++;
        unsigned u;
        switch (e) {
        case '"':
            luaL_addchar(&b, '"');
            break;
        case '\\':
            luaL_addchar(&b, '\\');
            break;
        case '/':
            luaL_addchar(&b, '/');
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
        case 'u':
            if (jr_hex4(r, &u)) return -1;
            if (u >= 0xD800 && u <= 0xDBFF) { /* a surrogate pair */
                unsigned lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u') return -1;
                r->p += 2;
                if (jr_hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return -1;
            }
            if (u == 0) return -1; /* as jansson: no NUL in strings */
            char o[4];
            int k = 0;
            if (u < 0x80) {
                o[k++] = (char)u;
            } else if (u < 0x800) {
                o[k++] = (char)(0xC0 | (u >> 6));
                o[k++] = (char)(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                o[k++] = (char)(0xE0 | (u >> 12));
                o[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                o[k++] = (char)(0x80 | (u & 0x3F));
            } else {
                o[k++] = (char)(0xF0 | (u >> 18));
                o[k++] = (char)(0x80 | ((u >> 12) & 0x3F));
                o[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
                o[k++] = (char)(0x80 | (u & 0x3F));
            }
            luaL_addlstring(&b, o, (size_t)k);
            break;
        default:
            return -1;
        }
    }
    if (r->p >= r->end) return -1;
    r->p++;
    luaL_pushresult(&b);
    return 0;
}

static int jr_number(lua_State *L, jr_t *r)
{
    const char *s = r->p;
    int real = 0;
    if (r->p < r->end && *r->p == '-') r->p++;
    if (r->p >= r->end) return -1;
    if (*r->p == '0') {
        r->p++;
    } else if (*r->p >= '1' && *r->p <= '9') {
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    } else {
        return -1;
    }
    if (r->p < r->end && *r->p == '.') {
        real = 1;
        if (++r->p >= r->end || *r->p < '0' || *r->p > '9') return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        real = 1;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') return -1;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
            r->p++;
    }
    char buf[64];
    size_t n = (size_t)(r->p - s);
    if (n >= sizeof buf) return -1; /* jansson's job */
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    if (!real) {
        long long v = strtoll(buf, &e, 10);
        if (errno == 0 && *e == '\0') {
            lua_pushinteger(L, (lua_Integer)v);
            return 0;
        }
        return -1; /* out of range: as jansson, an error */
    }
    double d = strtod(buf, &e);
    if (*e != '\0' || !isfinite(d)) return -1;
    lua_pushnumber(L, d);
    return 0;
}

static int jr_value(lua_State *L, jr_t *r)
{
    jr_ws(r);
    if (r->p >= r->end) return -1;
    char c = *r->p;
    if (c == '"') {
        r->p++;
        return jr_string(L, r);
    }
    if (c == '{' || c == '[') {
        if (++r->depth > 64 || !lua_checkstack(L, 4)) return -1;
        int obj = c == '{';
        r->p++;
        lua_newtable(L);
        lua_Integer i = 0;
        jr_ws(r);
        if (r->p < r->end && *r->p == (obj ? '}' : ']')) {
            r->p++;
            r->depth--;
            return 0;
        }
        for (;;) {
            if (obj) {
                jr_ws(r);
                if (r->p >= r->end || *r->p != '"') return -1;
                r->p++;
                if (jr_string(L, r)) return -1;
                jr_ws(r);
                if (r->p >= r->end || *r->p != ':') return -1;
                r->p++;
                if (jr_value(L, r)) return -1;
                lua_rawset(L, -3);
            } else {
                if (jr_value(L, r)) return -1;
                lua_rawseti(L, -2, ++i);
            }
            jr_ws(r);
            if (r->p >= r->end) return -1;
            if (*r->p == ',') {
                r->p++;
                continue;
            }
            if (*r->p != (obj ? '}' : ']')) return -1;
            r->p++;
            r->depth--;
            return 0;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) return jr_number(L, r);
    if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
        r->p += 4;
        lua_pushboolean(L, 1);
        return 0;
    }
    if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
        r->p += 5;
        lua_pushboolean(L, 0);
        return 0;
    }
    if (r->end - r->p >= 4 && memcmp(r->p, "null", 4) == 0) {
        r->p += 4;
        lj_push_null(L);
        return 0;
    }
    return -1;
}

int lj_push_text(lua_State *L, const char *s, size_t n)
{
    int top = lua_gettop(L);
    jr_t r = {s, s + n, 0};
    if (jr_value(L, &r) == 0) {
        jr_ws(&r);
        if (r.p == r.end) return 0;
    }
    lua_settop(L, top);
    return -1;
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    const char *why = "";
    json_t *j = lj_to_json(L, 1, &why);
    if (!j) return luaL_error(L, "kith.json.encode: %s", why);
    size_t n;
    char *s = json_to_str(j, &n);
    json_decref(j);
    lua_pushlstring(L, s, n);
    free(s);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    json_t *j = json_parse(s, n); /* Kith's input limits, as for API bodies */
    if (!j) {
        lua_pushnil(L);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, err_name(err_last()->code));
        lua_setfield(L, -2, "code");
        lua_pushstring(L, err_last()->msg);
        lua_setfield(L, -2, "message");
        return 2;
    }
    lj_push(L, j);
    json_decref(j);
    return 1;
}

void lj_open(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "decode");
    lj_push_null(L);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");
}
