---@meta
-- sdk/lua/kith.lua: LuaCATS annotations (lua-language-server / LuaLS) of the
-- `kith` global that Kith gives admin scripts. It is never run: editors read
-- it for completion, hover and type checks. Put it on the language server's
-- path, for example in .luarc.json:
--   { "runtime.version": "Lua 5.4", "workspace.library": ["<kith>/sdk/lua"] }
--
-- Convention (tests/unit/lua/test_luacats.c holds this file to it, and fails
-- when it and the C table built by lk_push_kith in core/lua/lua_kith.c drift
-- apart): every member of the `kith` table is declared by exactly one line
-- that starts at column 0, either
--   function kith.<path>(          for a function, or
--   kith.<path> = <value>          for a sub-table or a plain value,
-- with a `---` doc comment on the line just above it. A plain value written
-- as a number literal (kith.api_level) must equal the real one. Everything
-- else (---@class/---@field/---@alias of events, records, errors, options) is
-- a type of the data the API passes around, not a member of `kith`.
--
-- Where the calls work. A script's top level runs whenever the workspace's
-- scripts load: when the server opens the workspace and at every deploy
-- (and once more, in a scratch sandbox, when PUT /v1/scripts/{name} checks
-- the script first); it may call kith.on, kith.every (a declaration),
-- kith.log.*, kith.time.now and kith.json.*. Everything that reads or writes
-- the store (kith.entity.*, kith.emit, kith.after, kith.at, kith.cancel, and
-- kith.every as a one-off) works only inside a handler, where it joins the
-- handler's write transaction; calling it at the top level raises "... works
-- only inside a handler, not at a script's top level", so the deploy is
-- refused with that line. In a test file run by `kith test`, kith.entity.*
-- and kith.emit work anywhere, each write committed on its own against a
-- copy of the workspace (sdk/lua/kith_test.lua).
--
-- How calls fail. A failure the script can expect and handle (no such
-- record, a schema violation, a stale version, a refused write) returns
-- `nil, err` where err is a kith.Error {code=, message=}. Misuse (a wrong
-- argument type, a bad event name or timer spec, a value that is not JSON,
-- a call in the wrong place) raises a Lua error with the script and line;
-- inside a handler an uncaught error fails the handler (see kith.on).
--
-- The sandbox. Lua 5.4 with base (no load, loadfile, dofile, rawset,
-- collectgarbage, print), string (no string.dump), table, math, utf8 and
-- coroutine; no io, os or debug. require serves only the modules that ship
-- with Kith (scripts/lib: require("fields"), require("dates"); see
-- scripts/README.md), each loaded once per state and returned read-only. `kith` and the libraries are
-- read-only (assigning to them raises; pairs() over them yields nothing:
-- this file is the way to discover them). Budgets, by default: a handler
-- call or a script's top level may run 50 ms and add 16 MiB; all scripts of
-- a workspace share one state of at most 64 MiB. Running out of time raises
-- an error that pcall cannot swallow; either overrun fails the handler (or
-- the load). Each script has its own globals; all scripts are reloaded in a
-- fresh state at every deploy, so upvalues and globals last only until the
-- next load and must not be relied on as storage (use records).

-- ---------------------------------------------------------------- data types

---A JSON-compatible Lua value. Tables whose keys are exactly 1..n (n >= 1)
---become JSON arrays; any other table (including `{}`) becomes an object,
---whose keys must be strings. Integers stay integers. NaN, infinities,
---functions, userdata other than kith.json.null, non-UTF-8 strings, more than
---200,000 values and nesting deeper than 64 levels (a cycle) are not JSON.
---@alias kith.Json nil|boolean|number|string|table|lightuserdata

---The stable code of an expected failure (the same names the HTTP API uses).
---@alias kith.ErrorCode
---| "invalid"        # a bad argument, filter, sort, cursor or JSON text
---| "not_found"      # no such collection or record (also a malformed id)
---| "exists"         # a unique value is taken
---| "conflict"       # if_version did not match the stored version
---| "validation"     # the record breaks its collection's schema
---| "vetoed"         # a before-hook of that write returned false
---| "handler_failed" # a before-hook of that write raised an error or ran out of budget
---| "limit"          # a size or count limit (JSON too deep or too large, cascade depth 8)
---| "no_memory"      # a memory budget ran out
---| "io"             # the disk failed
---| "no_space"       # the disk or the map is full
---| "corrupt"        # stored data failed its checksum
---| "locked"
---| "forbidden"
---| "busy"
---| "shutdown"
---| "internal"       # a bug in Kith
---| "unknown"

---The second value returned by a call that failed in an expected way: the
---first value is then `nil`.
---
---```lua
---local rec, err = kith.entity.get("contacts", id)
---if not rec then kith.log.warn(err.code .. ": " .. err.message) return end
---```
---@class kith.Error
---@field code kith.ErrorCode stable, for code to test
---@field message string for people; may name the field or the JSON line and column

---A stored record as the API returns it: its fields plus four pseudo-fields
---Kith maintains. Writing a pseudo-field fails with "validation" ("is set by
---Kith and cannot be written"), so do not pass a record you read back to
---kith.entity.create or update as it is: copy the fields you mean.
---@class kith.Record
---@field id string 26 Crockford base32 characters, ordered by creation time
---@field version integer 1 at creation, +1 at every change
---@field created_at string RFC 3339 in UTC with microseconds, "2026-05-01T09:30:00.123456Z"
---@field updated_at string RFC 3339 in UTC with microseconds
---@field [string] any the collection's fields (a missing field is simply absent)

---Field values to write: a table of field name to JSON-compatible value,
---only fields the collection's schema defines (an unknown field, or id,
---version, created_at, updated_at, fails with "validation"). In a patch
---(kith.entity.update) `kith.json.null` removes a field.
---@alias kith.Fields table<string, kith.Json>

---A filter in Kith's one filter grammar (the same as the HTTP API's), as a
---Lua table; all clauses must hold, `{}` or nil matches everything.
---
---  `field = value`                              equals (shorthand for {eq = value})
---  `field = {op = operand, ...}`                 ops: eq ne lt lte gt gte,
---                                                `["in"] = {v1, v2, ...}` (1 to 1000 values),
---                                                prefix (non-empty string, ASCII case-insensitive),
---                                                exists (true/false)
---  `["and"] = {f, ...}`, `["or"] = {f, ...}`, `["not"] = f`
---
---Operands are checked against the field's type; an unknown field or a wrong
---type fails with code "invalid". Pseudo-fields id, version, created_at and
---updated_at work too. A missing field matches only `ne` and `exists = false`.
---Arrays match when any element matches. At most 16 levels and 256 terms.
---
---```lua
---{stage = "won", amount = {gte = "1000"}}
---{["or"] = {{owner = uid}, {team = {["in"] = {"emea", "apac"}}}}}
---```
---@alias kith.Filter table<string, any>

---Options of kith.entity.query.
---@class kith.QueryOptions
---@field limit? integer rows per page: default 50, clamped to 1..1000 (must be an integer)
---@field sort? string "field" ascending or "-field" descending: id, created_at or an indexed scalar field; ties broken by id, records without the field first when ascending. Default: the plan's order (id order for a scan)
---@field cursor? string the second value of the previous page's call, to fetch the next page of the same query (same filter and sort; another query's cursor fails with "invalid")

---Options of kith.entity.update and kith.entity.delete.
---@class kith.WriteOptions
---@field if_version? integer write only if the record is at this version, else fail with code "conflict"; absent or 0: no check

---What a before-hook or an after-hook of a collection event, or a handler of
---a domain event, receives. The table is the handler's own (not read-only).
---
---Collection events (`<collection>.<suffix>`):
---
---| event           | before                          | record                                  |
---|-----------------|---------------------------------|-----------------------------------------|
---| before_create   | absent                          | the fields about to be written: amend   |
---| before_update   | the stored fields               | all fields after the patch: amend       |
---| before_delete   | the stored fields               | absent                                  |
---| created         | absent                          | the record as stored now (kith.Record)  |
---| updated         | previous values of `changed` *  | the record as stored now (kith.Record)  |
---| deleted         | the deleted record's fields     | absent                                  |
---
---(*) a field that was absent before the update is kith.json.null there.
---Before-hook `record` and `before` hold fields only (no id, version,
---created_at, updated_at). An after-hook's `record` is read when the handler
---runs, so it may be newer than the change that woke it, and is absent if the
---record was deleted since.
---
---Domain events (`lead.hot`, a timer's event): name, op = "event", phase =
---"after", depth, seq, and payload; no id, collection, changed, before or
---record.
---@class kith.Event
---@field name string the event, "contacts.before_update", "contacts.created", "lead.hot"
---@field op "create"|"update"|"delete"|"event" what happened; "event" for a domain event
---@field phase "before"|"after" "before": inside the write, which the handler may amend or veto; "after": delivered after commit, in commit order
---@field depth integer cascade depth of the change: 0 for a client's write or a fired timer, +1 for each handler write in between (a cascade stops at 8)
---@field seq? integer after-hooks and domain events: the change's sequence in the change log (absent in before-hooks)
---@field id? string collection events: the record's id (in before_create, the id the new record will get)
---@field collection? string collection events: the record's collection
---@field changed? string[] collection events: the names of the fields the write changes (an update wakes a handler with `fields` only if one of them is here)
---@field before? table<string, any> see the table above; absent where it says so
---@field record? kith.Record|table<string, any> see the table above. In before_create and before_update, changing it (set, or remove with nil or kith.json.null) changes what is written; the result is validated against the schema again
---@field payload? any domain events: the payload given to kith.emit or the timer (absent if none was given)

---A handler. In a before-hook, returning `false` (optionally with a message)
---vetoes the write: the client gets HTTP 422 with that message ("refused by a
---rule" if none). Returning `false, {code =, message =, field =, existing =}`
---refuses it as a client's mistake of that kind: "vetoed" (422), "exists"
---(409, a duplicate: `existing` is its id, shown as `existing_id` to callers
---who may read it, and `?upsert=true` updates it instead), "conflict" (409),
---"validation" (422, `field` named in the problem's errors) or "forbidden"
---(403); another code is an error. Any other return value, or none, lets the
---write go on. An after-hook's return values are ignored.
---@alias kith.Handler fun(ev: kith.Event): (ok: boolean?, why: string|kith.Refusal?)

---How a before-hook refuses a write (see kith.Handler).
---@class kith.Refusal
---@field code "vetoed"|"exists"|"conflict"|"validation"|"forbidden"
---@field message? string what the client reads
---@field field? string the offending field
---@field existing? string "exists": the id of the record the write duplicates

---Options of kith.on.
---@class kith.HandlerOptions
---@field priority? integer 1 to 1000000, default 100; lower runs first, then registration order
---@field name? string the handler's name, unique within the script (a repeat raises). Default "<event>#<n>", n its position among the script's kith.on calls. An after-hook's delivery cursor is kept under this name: keep it stable across deploys, or the renamed handler starts afresh at the current end of the change log
---@field fields? string[] at most 32 field names: an update (before_update, updated) wakes the handler only if it changes one of them; ignored for other events

---Options of the timer functions.
---@class kith.TimerOptions
---@field id? string the timer's id within this script: 1 to 100 characters of letters, digits and `_.:-`. Scheduling an id that exists replaces that timer. Default: a new unique id (kith.after/at/every in a handler), or the event name (kith.every at the top level)

-- ------------------------------------------------------------------- kith

---The Kith API for admin scripts (read-only).
---@class kithlib
kith = {}

-- ------------------------------------------------------------ kith.entity

---Records: read and write the workspace's collections. Every function works
---only inside a handler (it raises at a script's top level) and runs in the
---handler's write transaction: what the handler reads includes its own
---earlier writes, and its writes commit or roll back with it (a vetoed or
---failed before-hook, or a failed after-hook, leaves nothing). System
---collections (names starting with `_`) raise "system collections are not
---open to scripts".
---@class kithlib.entity
kith.entity = {}

---Reads one record.
---
---Fails (nil, err) with "not_found" when the collection or the record does
---not exist or `id` is not a record id.
---
---```lua
---local c, err = kith.entity.get("contacts", ev.record.contact)
---if not c then return false, "unknown contact (" .. err.code .. ")" end
---```
---@param collection string
---@param id string a record id (26 characters)
---@return kith.Record? record the record, or nil on failure
---@return kith.Error? err set when record is nil
---@nodiscard
function kith.entity.get(collection, id) end

---Reads one page of the records that match a filter.
---
---Returns the page (an array of records, possibly empty) and the cursor of
---the next page, or nil when this was the last page. A page may come back
---shorter than `limit` with a cursor: keep fetching until the cursor is nil.
---Pages are keyset: concurrent writes never duplicate a record across pages.
---Fails (nil, err) with "not_found" (no such collection) or "invalid" (a bad
---filter, sort or cursor; the message names the place). A filter or option
---that cannot be read at all (not a table, not JSON, a non-integer limit)
---raises.
---
---```lua
---local rows, cursor = kith.entity.query("deals", {stage = "won"}, {sort = "-amount", limit = 10})
---if not rows then error(cursor.message) end  -- on failure the second value is the error
---for _, d in ipairs(rows) do kith.log.info(d.id) end
---```
---@param collection string
---@param filter? kith.Filter nil matches everything
---@param opts? kith.QueryOptions ignored unless a table
---@return kith.Record[]? rows the page, or nil on failure
---@return string|kith.Error|nil next on success: the next page's cursor, or nil after the last page; on failure: the error
---@nodiscard
function kith.entity.query(collection, filter, opts) end

---Creates a record and returns it as stored (with its new id, version 1 and
---times). The collection's before_create hooks run first and may amend or
---veto it; its after-hooks see it after commit (never the handler that
---wrote it: a handler does not see its own writes).
---
---Fails (nil, err) with "not_found" (no such collection), "validation" (the
---schema; the message names the fields), "exists" (a unique value is
---taken), "vetoed" or "handler_failed" (a before-hook), "limit" (the cascade
---of handler writes reached depth 8). Only this write is undone: the
---handler goes on and decides. `fields` that are not JSON raise.
---@param collection string
---@param fields kith.Fields
---@return kith.Record? record the stored record, or nil on failure
---@return kith.Error? err set when record is nil
function kith.entity.create(collection, fields) end

---Updates a record with a merge patch (RFC 7396): the fields in `patch` are
---set, nested objects are merged, a field set to kith.json.null is removed
---(nil in a Lua table is simply absent, so it cannot remove anything).
---Returns the record as stored afterwards. An update that changes nothing
---writes nothing and wakes no handler.
---
---Fails (nil, err) with "not_found" (no such collection or record, or a
---malformed id), "conflict" (opts.if_version is stale), "validation",
---"exists", "vetoed", "handler_failed" or "limit", as kith.entity.create.
---@param collection string
---@param id string
---@param patch kith.Fields
---@param opts? kith.WriteOptions
---@return kith.Record? record the stored record, or nil on failure
---@return kith.Error? err set when record is nil
function kith.entity.update(collection, id, patch, opts) end

---Deletes a record; its before_delete hooks may veto.
---
---Returns true, or fails (nil, err) with "not_found" (no such collection or
---record, or a malformed id), "conflict" (opts.if_version is stale),
---"vetoed", "handler_failed" or "limit".
---@param collection string
---@param id string
---@param opts? kith.WriteOptions
---@return true? ok true, or nil on failure
---@return kith.Error? err set when ok is nil
function kith.entity.delete(collection, id, opts) end

-- -------------------------------------------------- handlers and events

---Registers a handler for an event. Works only at a script's top level
---(raises inside a handler); returns nothing. At deploy time the script is
---checked first: a bad event name, a non-function handler or a bad option is
---refused with HTTP 422 and the line.
---
---Events:
---  * `<collection>.before_create|before_update|before_delete`: before-hooks
---    run inside the write, before it commits. They may read and write other
---    records, amend `ev.record`, or veto by returning `false, "message"`
---    (HTTP 422 for the client). An error (or a budget overrun) fails the
---    write with "handler_failed" (HTTP 500; the message goes to the log).
---  * `<collection>.created|updated|deleted` and domain events such as
---    `lead.hot` (from kith.emit or a timer): after-hooks, delivered after
---    commit in commit order, each handler with its own durable cursor. The
---    handler's writes and its cursor commit together, so store effects
---    happen exactly once; an error rolls them back and the same event is
---    retried (100 ms doubling to 60 s) and never skipped, so a handler that
---    always fails holds back its own later events (GET /v1/hooks shows it).
---    A new handler starts at the end of the change log: it does not see
---    older events.
---
---A handler never sees the changes its own writes made. Handlers run in
---priority order (lower first), then in registration order.
---
---```lua
---kith.on("contacts.before_update", {fields = {"stage"}, name = "lost-needs-reason"}, function(ev)
---  if ev.record.stage == "lost" and not ev.record.reason then
---    return false, "a lost contact needs a reason"
---  end
---end)
---kith.on("contacts.created", {name = "welcome"}, function(ev)
---  kith.emit("contact.welcome", {id = ev.id})
---end)
---```
---@param event string a collection event or a domain event: two or more dot-separated segments of [a-z0-9_], under 128 bytes; `.before_` anywhere else is refused as a typo
---@param opts kith.HandlerOptions
---@param handler kith.Handler
---@overload fun(event: string, handler: kith.Handler)
function kith.on(event, opts, handler) end

---Appends a domain event to the change log, in the handler's transaction:
---after commit it is delivered to every `kith.on(name, ...)` handler of the
---workspace (all scripts), except the one that emitted it. Works only inside
---a handler (before- or after-hook); a vetoed or failed handler emits
---nothing.
---
---Raises if `name` is not a domain event (it must not be a collection event
---such as `contacts.created`) or the payload is not JSON. Fails (nil, err)
---only when the store refuses the write.
---@param name string a domain event like "lead.hot": two or more dot-separated segments of [a-z0-9_]
---@param payload? kith.Json the handler's `ev.payload`
---@return true? ok true, or nil on failure
---@return kith.Error? err set when ok is nil
function kith.emit(name, payload) end

-- ----------------------------------------------------------------- timers

---Schedules a domain event once, after a delay. Works only inside a handler:
---the timer is written in the handler's transaction, so it exists exactly
---when the handler's writes commit. When due, the event is appended to the
---change log and delivered to `kith.on(event, ...)` handlers like a
---kith.emit (at least once, across restarts; one that came due while the
---server was down fires when it starts).
---
---Raises on a bad delay, a non-domain event name, a bad opts.id or a payload
---that is not JSON. Fails (nil, err) only when the store refuses the write.
---
---```lua
---kith.after("3d", "followup.due", {contact = ev.id}, {id = "followup:" .. ev.id})
---```
---@param delay number|string seconds (a number), or a number with a unit: "90s", "15m", "1.5h", "2d"; 1 second to 3650 days
---@param event string a domain event name, like "followup.due"
---@param payload? kith.Json the handler's `ev.payload`
---@param opts? kith.TimerOptions
---@return string? id the timer's id within this script (opts.id, or a new one), or nil on failure
---@return kith.Error? err set when id is nil
function kith.after(delay, event, payload, opts) end

---Schedules a domain event once, at a time. Works only inside a handler, like
---kith.after; a time in the past fires at the next delivery round.
---
---Raises on a time that cannot be read, a non-domain event name, a bad
---opts.id or a payload that is not JSON. Fails (nil, err) only when the
---store refuses the write.
---@param when number|string milliseconds since 1970 (as kith.time.now), or RFC 3339 like "2026-12-01T09:00:00Z" (an offset is honoured)
---@param event string a domain event name, like "meeting.due"
---@param payload? kith.Json the handler's `ev.payload`
---@param opts? kith.TimerOptions
---@return string? id the timer's id within this script, or nil on failure
---@return kith.Error? err set when id is nil
function kith.at(when, event, payload, opts) end

---Fires a domain event again and again, on an interval or a cron line.
---
---At a script's top level it is a declaration: each deploy compares the
---script's declarations with the stored timers; an unchanged one keeps its
---due time (a redeploy does not reset a daily job), a changed one is
---rescheduled, and one the script no longer declares is removed. The id is
---opts.id or the event name; declaring an id twice in a script raises (give
---each an id); at most 256 per script. Inside a handler it schedules one
---recurring timer in the handler's transaction (id: opts.id or a new one).
---The first firing is the next time after now that the schedule gives. A
---recurring timer missed while the server was down fires once, then goes on
---from then.
---
---Raises on a bad schedule (a cron line that never fires, like "0 0 30 2 *",
---included), a non-domain event name, a bad opts.id or a payload that is not
---JSON. Inside a handler, fails (nil, err) only when the store refuses the
---write.
---
---```lua
---kith.every("0 9 * * 1-5", "digest.daily")           -- weekdays 09:00 UTC, id "digest.daily"
---kith.every("15m", "sync.tick", {full = false}, {id = "sync"})
---```
---@param spec number|string an interval (seconds, or "90s", "15m", "2h", "1d"; 1 s to 3650 days), or a cron line in UTC: "minute hour day-of-month month day-of-week", each `*`, `n`, `a-b`, `*/n`, `a-b/n`, `n/step` or a comma list; day-of-week 0-7 (0 and 7 are Sunday); when both day fields are restricted either may match
---@param event string a domain event name, like "digest.daily"
---@param payload? kith.Json the handler's `ev.payload`
---@param opts? kith.TimerOptions
---@return string? id the timer's id within this script, or nil on failure
---@return kith.Error? err set when id is nil
function kith.every(spec, event, payload, opts) end

---Cancels one of this script's timers by the id kith.after/at/every
---returned. Works only inside a handler, in its transaction. A script can
---name only its own timers. A declared kith.every cancelled this way comes
---back at the next deploy if the script still declares it.
---
---Raises on a malformed id. Fails (nil, err) only when the store fails.
---@param id string
---@return boolean? removed true if the timer existed and is removed, false if there was none; nil on failure
---@return kith.Error? err set when removed is nil
function kith.cancel(id) end

-- ------------------------------------------------------------- kith.log

---Logging to the server's log, as `workspace <ws>: script <name>: <message>`
---under the component "lua". Works everywhere (top level and handlers);
---returns nothing. Only the first argument is logged, converted like
---tostring; messages are cut at 2,000 bytes.
---@class kithlib.log
kith.log = {}

---Logs at level info (hidden when the server logs at warn).
---@param message any
function kith.log.info(message) end

---Logs at level warn.
---@param message any
function kith.log.warn(message) end

---Logs at level error.
---@param message any
function kith.log.error(message) end

-- ------------------------------------------------------------ kith.time

---Clock.
---@class kithlib.time
kith.time = {}

---The wall-clock time in whole milliseconds since 1970-01-01 UTC (an integer;
---the unit kith.at takes). Works everywhere.
---@return integer ms
---@nodiscard
function kith.time.now() end

-- ------------------------------------------------------------ kith.json

---JSON text to Lua values and back, with the same rules as records: objects
---and arrays are tables, JSON null is kith.json.null. Works everywhere.
---@class kithlib.json
kith.json = {}

---Encodes a value as compact JSON text. A table with keys exactly 1..n is an
---array, any other table (including `{}`) an object; nil and kith.json.null
---become `null`. Raises on what is not JSON (see kith.Json).
---@param value kith.Json
---@return string json
---@nodiscard
function kith.json.encode(value) end

---Decodes JSON text (strict RFC 8259, with the HTTP API's input limits:
---duplicate keys are refused, at most 64 levels deep). JSON null becomes
---kith.json.null, never nil, so nil means failure.
---
---Fails (nil, err) with "invalid" (the message names the line and column) or
---"limit" (too deep or too large). Raises if `text` is neither a string nor
---a number.
---@param text string
---@return any value the decoded value, or nil on failure
---@return kith.Error? err set when value is nil
---@nodiscard
function kith.json.decode(text) end

---The JSON null value (a light userdata; compare with `==`). As a field
---value in kith.entity.update's patch it removes the field; in a before-hook
---`ev.record.x = kith.json.null` removes x like `ev.record.x = nil`. Fields
---the store returns are never null (null is not a stored value).
---@type lightuserdata
kith.json.null = nil

-- ---------------------------------------------------------- kith.api_level

---The level of the Kith API this server offers (HTTP, Lua and plugins
---together); it grows by one whenever the API gains something. A script
---that needs a newer feature can check it: `assert(kith.api_level >= 1)`.
---@type integer
kith.api_level = 2
