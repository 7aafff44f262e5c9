-- Tests scripts/lib/dates.lua (run by tests/unit/lua/test_shipped.c as a
-- script's top level; a failed check raises with its line).
local d = require("dates")

local function eq(got, want, what)
  if got ~= want then
    error((what or "value") .. ": expected " .. tostring(want) .. ", got " .. tostring(got), 2)
  end
end

-- iso and parse
eq(d.iso(0), "1970-01-01T00:00:00.000Z")
eq(d.iso(951782400000), "2000-02-29T00:00:00.000Z", "a leap day")
eq(d.iso(-1), "1969-12-31T23:59:59.999Z", "before 1970")
eq(d.iso(1.9), "1970-01-01T00:00:00.001Z", "fractions of a millisecond are dropped")
eq(d.iso(253402300799999), "9999-12-31T23:59:59.999Z")
assert(not pcall(d.iso, 253402300800000), "past year 9999")
assert(not pcall(d.iso, "now"))
assert(not pcall(d.iso, 0 / 0))
for z = -719000, 2900000, 9973 do -- years 0001 to 9909, every leap rule
  local ms = z * 86400000 + 45296789
  eq(d.parse(d.iso(ms)), ms, "round trip of day " .. z)
end
eq(d.parse("2026-05-01T10:30:00+02:00"), d.parse("2026-05-01T08:30:00Z"), "an offset")
eq(d.parse("2026-05-01T06:30:00-02:00"), d.parse("2026-05-01T08:30:00z"), "a negative offset")
eq(d.parse("2026-05-01"), d.parse("2026-05-01T00:00:00Z"), "a date is midnight UTC")
eq(d.parse("2026-05-01 08:30:00Z"), d.parse("2026-05-01T08:30:00Z"), "a space for T")
eq(d.parse("2026-05-01T00:00:00.5Z") % 1000, 500)
eq(d.parse("2026-05-01T00:00:00.123456Z") % 1000, 123)
eq(d.parse("2016-12-31T23:59:60Z"), d.parse("2016-12-31T23:59:59Z"), "a leap second")
for _, s in ipairs({"2026-02-29", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
                    "2026-05-01T24:00:00Z", "2026-05-01T00:60:00Z", "2026-05-01T00:00:00",
                    "2026-05-01T00:00:00+2:00", "2026-05-01T00:00:00.Z", "x", "",
                    "2026-05-01T00:00:00+24:00", ("9"):rep(65)}) do
  local ms, why = d.parse(s)
  eq(ms, nil, "parse(" .. s .. ")")
  assert(type(why) == "string", "a reason for " .. s)
end
eq(d.parse("2024-02-29"), 1709164800000, "a leap year")
eq(select(2, d.parse(5)), "expected a string")

-- working hours (defaults: Monday to Friday, 09:00 to 17:00 UTC)
local function at(s) return assert(d.parse(s)) end
local function add(s, h, o) return d.iso(d.add_working_hours(at(s), h, o)) end
eq(add("2026-05-01T15:00:00Z", 4), "2026-05-04T11:00:00.000Z", "Friday 15:00 + 4h is Monday 11:00")
eq(add("2026-05-02T12:00:00Z", 0), "2026-05-04T09:00:00.000Z", "0h: the next working moment")
eq(add("2026-05-04T10:15:00Z", 0), "2026-05-04T10:15:00.000Z", "0h inside working time")
eq(add("2026-05-04T09:00:00Z", 8), "2026-05-04T17:00:00.000Z", "a whole day ends at closing")
eq(add("2026-05-04T16:00:00Z", 1.5), "2026-05-05T09:30:00.000Z", "carried to the next morning")
eq(add("2026-05-04T07:00:00Z", 1), "2026-05-04T10:00:00.000Z", "before opening")
eq(add("2026-05-04T18:00:00Z", 1), "2026-05-05T10:00:00.000Z", "after closing")
eq(add("2026-05-04T09:00:00Z", 40), "2026-05-08T17:00:00.000Z", "a working week")
eq(add("2026-05-04T09:00:00Z", 41), "2026-05-11T10:00:00.000Z", "over the weekend")
eq(add("2026-05-01T15:00:00Z", 4, {holidays = {"2026-05-04"}}), "2026-05-05T11:00:00.000Z",
   "a holiday is skipped")
eq(add("2026-05-01T15:00:00Z", 4, {offset = 120}), "2026-05-04T11:00:00.000Z",
   "UTC+2: 17:00 local is closed; Monday 13:00 local is 11:00 UTC")
eq(add("2026-05-01T15:00:00Z", 4, {offset = -300}), "2026-05-01T19:00:00.000Z",
   "UTC-5: 10:00 local + 4h is 14:00 local")
eq(add("2026-05-01T15:00:00Z", 10, {days = {6, 7}}), "2026-05-03T11:00:00.000Z",
   "weekend shifts")
eq(add("2026-05-04T08:00:00Z", 1, {from = 8.5, to = 12.25}), "2026-05-04T09:30:00.000Z",
   "fractional hours")
eq(add("2026-05-04T12:00:00Z", 1, {from = 8.5, to = 12.25}), "2026-05-05T09:15:00.000Z")
eq(add("2026-05-04T23:00:00Z", 1, {from = 0, to = 24}), "2026-05-05T00:00:00.000Z",
   "round the clock on working days")
eq(d.iso(d.add_working_hours("2026-05-01T15:00:00Z", 4)), "2026-05-04T11:00:00.000Z",
   "RFC 3339 text as the start")
local far = d.add_working_hours(at("2026-05-04T09:00:00Z"), 10000)
eq(d.iso(far), "2031-02-14T17:00:00.000Z", "the most hours, within the budget")
for _, case in ipairs({{-1}, {10001}, {0 / 0}, {"8"}, {1, {from = 17, to = 9}},
                       {1, {to = 25}}, {1, {days = {}}}, {1, {days = {0}}}, {1, {days = {1.5}}},
                       {1, {offset = 1.5}}, {1, {offset = 2000}}, {1, {holidays = {"x"}}},
                       {1, "opts"}}) do
  assert(not pcall(d.add_working_hours, 0, case[1], case[2]), "refused: case " .. _)
end
assert(not pcall(d.add_working_hours, "yesterday", 1))
assert(d.is_working_time(at("2026-05-04T09:00:00Z")))
assert(d.is_working_time(at("2026-05-04T16:59:59.999Z")))
assert(not d.is_working_time(at("2026-05-04T17:00:00Z")))
assert(not d.is_working_time(at("2026-05-04T08:59:59.999Z")))
assert(not d.is_working_time(at("2026-05-02T12:00:00Z")), "Saturday")
assert(not d.is_working_time(at("2026-05-04T12:00:00Z"), {holidays = {"2026-05-04"}}))
assert(d.is_working_time(at("2026-05-04T07:30:00Z"), {offset = 120}), "09:30 local")
