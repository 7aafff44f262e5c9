-- Tests scripts/lib/fields.lua (run by tests/unit/lua/test_shipped.c as a
-- script's top level; a failed check raises with its line).
local f = require("fields")
local null = kith.json.null

local function eq(got, want, what)
  if got ~= want then
    error((what or "value") .. ": expected " .. tostring(want) .. ", got " .. tostring(got), 2)
  end
end

-- blank
for _, v in ipairs({"", " \t\r\n", "\xC2\xA0 ", null}) do assert(f.blank(v), tostring(v)) end
assert(f.blank(nil))
assert(f.blank({}))
for _, v in ipairs({"x", " x ", 0, false, {1}, {a = 1}}) do assert(not f.blank(v), tostring(v)) end

-- trim and squish
eq(f.trim("  Ada  "), "Ada")
eq(f.trim(""), "")
eq(f.trim("   "), "")
eq(f.trim("a b"), "a b")
eq(f.trim("\tx\r\n"), "x")
eq(f.trim("\xC2\xA0Ada\xC2\xA0"), "Ada", "no-break spaces")
eq(f.trim(" Zoë "), "Zoë", "other UTF-8 is kept")
local long = (" "):rep(60000) .. "x y" .. (" "):rep(60000)
eq(f.trim(long), "x y", "a long value stays within the pattern caps")
eq(f.squish("  Ada   Lovelace \t King "), "Ada Lovelace King")
eq(f.squish(long), "x y")
assert(not pcall(f.trim, nil))
assert(not pcall(f.squish, 3))

-- email
eq(f.email("  Ada@Example.COM "), "ada@example.com")
eq(f.email("\xC2\xA0bob@x.org"), "bob@x.org")
eq(f.email("first.last+tag@sub.example.co.uk"), "first.last+tag@sub.example.co.uk")
local bad = {"", "ada", "ada@@example.com", "a@b@example.com", "ada example@x.com",
             "@example.com", "ada@", "ada@example", "ada@.example.com", "ada@example.com.",
             "ada@exa\tmple.com"}
for _, v in ipairs(bad) do
  local e, why = f.email(v)
  eq(e, nil, "email(" .. v .. ")")
  assert(type(why) == "string" and why ~= "", "a reason for " .. v)
end
assert(not pcall(f.email, nil))

-- tags
local r = {}
assert(f.tag_add(r, "vip"))
eq(#r.tags, 1)
assert(not f.tag_add(r, " vip "), "a tag is added once, trimmed")
eq(#r.tags, 1)
assert(f.tag_add(r, "lead"))
eq(r.tags[2], "lead", "order kept")
assert(f.has_tag(r, "lead"))
assert(not f.has_tag(r, "nope"))
eq(kith.json.encode(r.tags), '["vip","lead"]', "a tag list is a JSON array")
assert(f.tag_remove(r, "vip"))
eq(#r.tags, 1)
eq(r.tags[1], "lead")
assert(not f.tag_remove(r, "vip"))
assert(f.tag_remove(r, "lead"))
eq(r.tags, null, "an empty list is written as no field")
assert(not f.has_tag(r, "lead"))
assert(not f.tag_remove(r, "lead"))
local r2 = {labels = {"a", "b", "a"}}
assert(f.tag_remove(r2, "a", "labels"), "another field")
eq(#r2.labels, 1)
eq(r2.labels[1], "b")
local r3 = {tags = null}
assert(f.tag_add(r3, "x"))
eq(r3.tags[1], "x")
assert(not pcall(f.tag_add, r, ""), "a blank tag")
assert(not pcall(f.tag_add, r, 5), "a tag that is not a string")
assert(not pcall(f.tag_add, {tags = "x"}, "y"), "a field that is not a list")
assert(not pcall(f.has_tag, nil, "y"), "no record")

-- changed
local function ev(op, phase, before, record, changed)
  return {op = op, phase = phase, before = before, record = record, changed = changed or {}}
end
assert(f.changed(ev("create", "before", nil, {stage = "lead"}), "stage"))
assert(not f.changed(ev("create", "before", nil, {stage = ""}), "stage"))
assert(not f.changed(ev("create", "before", nil, {}), "stage"))
assert(f.changed(ev("update", "before", {stage = "lead"}, {stage = "won"}, {"stage"}), "stage"))
assert(not f.changed(ev("update", "before", {stage = "lead"}, {stage = "lead"}, {"stage"}), "stage"),
       "the same value again is no change")
assert(f.changed(ev("update", "before", {}, {stage = "lead"}), "stage"), "set by another hook")
assert(f.changed(ev("update", "before", {stage = "lead"}, {}), "stage"), "removed")
assert(not f.changed(ev("update", "before", {stage = null}, {}), "stage"), "null is no value")
assert(f.changed(ev("update", "before", {t = {1}}, {t = {1}}, {"t"}), "t"), "tables: the patch")
assert(f.changed(ev("update", "after", nil, nil, {"stage"}), "stage"))
assert(not f.changed(ev("update", "after", nil, nil, {"name"}), "stage"))
assert(not pcall(f.changed, nil, "stage"))

-- the module is shared and read-only
assert(not pcall(function() f.trim = nil end))
