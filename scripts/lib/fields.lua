-- Field helpers for rules: blank checks, trimming, e-mail normalisation,
-- tags on a record's array field, and whether an update changed a field.
--
--   local fields = require("fields")
--   fields.blank(v)                 nil, kith.json.null, "", spaces only, or {}
--   fields.trim(s)                  without leading and trailing white space
--   fields.squish(s)                trimmed, inner runs of white space as one space
--   fields.email(s)                 trimmed and lower-cased, or nil, why
--   fields.has_tag(rec, tag, f?)    whether rec[f or "tags"] holds tag
--   fields.tag_add(rec, tag, f?)    adds tag once; true if it was not there
--   fields.tag_remove(rec, tag, f?) removes tag; true if it was there
--   fields.changed(ev, name)        whether the write sets or changes field name
--
-- White space is ASCII white space and the no-break space (U+00A0) that
-- pasting from web pages brings. Tags are compared exactly (after trimming
-- the tag given). An empty tag list is written as no field at all
-- (kith.json.null): Lua cannot tell an empty array from an empty object.

local M = {}

local NBSP = "\xC2\xA0"

local function check_string(fn, s)
  if type(s) ~= "string" then
    error(fn .. ": expected a string, got " .. type(s), 3)
  end
end

-- Whether v holds nothing: nil, kith.json.null, a string of white space
-- only, or a table with no entries.
function M.blank(v)
  if v == nil or v == kith.json.null then return true end
  if type(v) == "string" then
    return not v:gsub(NBSP, " "):find("%S")
  end
  if type(v) == "table" then
    for _ in pairs(v) do return false end
    return true
  end
  return false
end

function M.trim(s)
  check_string("fields.trim", s)
  s = s:gsub(NBSP, " ")
  local first = s:find("%S")
  if not first then return "" end
  -- the last non-space from the end: linear, where "%s*$" backtracks over
  -- every run of spaces (quadratic in a long one)
  local last = #s + 1 - s:reverse():find("%S")
  return (s:sub(first, last))
end

function M.squish(s)
  check_string("fields.squish", s)
  return (M.trim(s):gsub("%s+", " "))
end

-- An e-mail address, trimmed and lower-cased so that one address is stored
-- one way (a unique index compares bytes; almost every provider ignores the
-- case of the local part). Returns nil, why when s is not shaped like an
-- address (one @, something on both sides, a dot in the domain, no white
-- space or control characters).
function M.email(s)
  check_string("fields.email", s)
  local e = M.trim(s):lower()
  if e == "" then return nil, "empty" end
  if e:find("[%s%c]") then return nil, "contains white space" end
  local at = e:find("@", 1, true)
  if not at or e:find("@", at + 1, true) then return nil, "needs exactly one @" end
  local dom = e:sub(at + 1)
  if at == 1 then return nil, "nothing before the @" end
  if dom == "" or not dom:find(".", 1, true) or dom:sub(1, 1) == "." or dom:sub(-1) == "." then
    return nil, "the domain needs a dot, not at either end"
  end
  return e
end

local function tag_list(rec, field, fn)
  if type(rec) ~= "table" then error(fn .. ": expected a record table", 4) end
  local v = rec[field]
  if v == nil or v == kith.json.null then return nil end
  if type(v) ~= "table" then error(fn .. ": field '" .. field .. "' is not a list", 4) end
  return v
end

local function tag_arg(tag, fn)
  if type(tag) ~= "string" then error(fn .. ": the tag must be a string", 4) end
  tag = M.trim(tag)
  if tag == "" then error(fn .. ": the tag is blank", 4) end
  return tag
end

-- The checked tag, the field name and its list (nil if the field is empty).
local function tag_args(rec, tag, field, fn)
  field = field or "tags"
  tag = tag_arg(tag, fn)
  return tag, field, tag_list(rec, field, fn)
end

local function index_of(list, tag)
  for i, t in ipairs(list) do
    if t == tag then return i end
  end
  return nil
end

function M.has_tag(rec, tag, field)
  local t, _, list = tag_args(rec, tag, field, "fields.has_tag")
  return list ~= nil and index_of(list, t) ~= nil
end

function M.tag_add(rec, tag, field)
  local t, f, list = tag_args(rec, tag, field, "fields.tag_add")
  if not list then
    rec[f] = {t}
    return true
  end
  if index_of(list, t) then return false end
  list[#list + 1] = t
  return true
end

function M.tag_remove(rec, tag, field)
  local t, f, list = tag_args(rec, tag, field, "fields.tag_remove")
  if not list then return false end
  local kept, removed = {}, false
  for _, x in ipairs(list) do
    if x == t then removed = true else kept[#kept + 1] = x end
  end
  if not removed then return false end
  rec[f] = #kept > 0 and kept or kith.json.null
  return true
end

local function same(a, b)
  if a == kith.json.null then a = nil end
  if b == kith.json.null then b = nil end
  return a == b
end

-- In a before_create: whether the record sets the field (not blank). In a
-- before_update: whether its value after the write differs from the stored
-- one (tables: whether the write's patch names the field). Any other event:
-- whether the write names the field (ev.changed).
function M.changed(ev, name)
  if type(ev) ~= "table" then error("fields.changed: expected the event", 2) end
  local rec, before = ev.record, ev.before
  if ev.op == "create" and ev.phase == "before" and rec then
    return not M.blank(rec[name])
  end
  if ev.op == "update" and ev.phase == "before" and rec and before then
    local a, b = before[name], rec[name]
    if type(a) ~= "table" and type(b) ~= "table" then return not same(a, b) end
  end
  for _, f in ipairs(ev.changed or {}) do
    if f == name then return true end
  end
  return false
end

return M
