-- Dates for rules: RFC 3339 text to and from milliseconds, and due dates
-- counted in working hours.
--
--   local dates = require("dates")
--   dates.iso(ms)                      "2026-05-01T09:30:00.000Z" (UTC)
--   dates.parse(s)                     ms since 1970, or nil, why
--   dates.add_working_hours(t, h, o?)  t plus h working hours, in ms
--   dates.is_working_time(t, o?)       whether t falls in working hours
--
-- Times are milliseconds since 1970 (as kith.time.now() and kith.at take
-- them) or RFC 3339 text (as datetime fields hold them); "YYYY-MM-DD" means
-- that day's midnight UTC. Results are milliseconds: dates.iso turns them
-- into a datetime field's value.
--
-- Working hours, o (every key optional):
--   from, to   hours of the local day, 0 <= from < to <= 24 (9 and 17);
--              fractions work: 8.5 is 08:30
--   days       ISO weekdays that are working days, 1 = Monday .. 7 = Sunday
--              ({1, 2, 3, 4, 5})
--   offset     the local time's offset from UTC in minutes (0; 60 for CET).
--              One fixed offset: the sandbox has no time-zone database, so a
--              rule that spans a daylight-saving change is off by that hour
--   holidays   local dates that are not working days ({"2026-12-25"})
-- add_working_hours counts only time inside working hours: 4 hours from
-- Friday 15:00 with the defaults is Monday 11:00. The result always falls in
-- working time (or on its closing edge); 0 hours gives the next working
-- moment. At most 10,000 hours.

local M = {}

local DAY = 86400000
local HOUR = 3600000
local MAX_HOURS = 10000

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_in_month(y, m)
  if m == 2 then
    local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
    return leap and 29 or 28
  end
  return (m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31
end

local function date_days(s)
  local y, m, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > days_in_month(y, m) then return nil end
  return days_from_civil(y, m, d)
end

function M.iso(ms)
  if math.type(ms) ~= "integer" then
    if type(ms) ~= "number" or ms ~= ms or ms == math.huge or ms == -math.huge then
      error("dates.iso: expected milliseconds since 1970", 2)
    end
    ms = math.floor(ms)
  end
  local day = ms // DAY
  local rest = ms - day * DAY
  local y, m, d = civil_from_days(day)
  if y < 0 or y > 9999 then error("dates.iso: the year is outside 0000..9999", 2) end
  return string.format("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, rest // HOUR,
                       rest % HOUR // 60000, rest % 60000 // 1000, rest % 1000)
end

function M.parse(s)
  if type(s) ~= "string" then return nil, "expected a string" end
  if #s > 64 then return nil, "too long for a date-time" end
  local days = date_days(s)
  if days then return days * DAY end
  local y, mo, d, h, mi, sec, frac, zone =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(%.?%d*)([Zz+-][%d:]*)$")
  if not y then return nil, "expected RFC 3339, like 2026-05-01T09:30:00Z" end
  days = date_days(y .. "-" .. mo .. "-" .. d)
  h, mi, sec = tonumber(h), tonumber(mi), tonumber(sec)
  if not days or h > 23 or mi > 59 or sec > 60 then return nil, "a field is out of range" end
  if frac == "." then return nil, "a fraction needs digits" end
  local ms = 0
  if frac ~= "" then ms = tonumber((frac:sub(2) .. "00"):sub(1, 3)) end
  local off = 0
  if zone ~= "Z" and zone ~= "z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil, "expected Z or an offset like +01:00" end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 23 or om > 59 then return nil, "the offset is out of range" end
    off = (oh * 60 + om) * 60000
    if sign == "-" then off = -off end
  end
  if sec == 60 then sec = 59 end -- a leap second: the last moment of that minute
  return days * DAY + h * HOUR + mi * 60000 + sec * 1000 + ms - off
end

local function time_arg(t, fn)
  if type(t) == "string" then
    local ms, why = M.parse(t)
    if not ms then error(fn .. ": '" .. t .. "': " .. why, 3) end
    return ms
  end
  if type(t) ~= "number" or t ~= t or t == math.huge or t == -math.huge then
    error(fn .. ": expected milliseconds since 1970 or RFC 3339 text", 3)
  end
  return math.floor(t)
end

-- The working-hours options, checked, in milliseconds.
local function hours_opts(o, fn)
  if o ~= nil and type(o) ~= "table" then error(fn .. ": options must be a table", 3) end
  o = o or {}
  local from, to = o.from or 9, o.to or 17
  if type(from) ~= "number" or type(to) ~= "number" or not (from >= 0 and from < to and to <= 24) then
    error(fn .. ": working hours need 0 <= from < to <= 24", 3)
  end
  local days = {}
  local any = false
  for _, d in ipairs(o.days or {1, 2, 3, 4, 5}) do
    if math.type(d) ~= "integer" or d < 1 or d > 7 then
      error(fn .. ": days are ISO weekdays, 1 (Monday) to 7 (Sunday)", 3)
    end
    days[d], any = true, true
  end
  if not any then error(fn .. ": at least one working day is needed", 3) end
  local offset = o.offset or 0
  if math.type(offset) ~= "integer" or offset < -24 * 60 or offset > 24 * 60 then
    error(fn .. ": offset is whole minutes from UTC, -1440 to 1440", 3)
  end
  local holidays = {}
  for _, h in ipairs(o.holidays or {}) do
    local z = type(h) == "string" and date_days(h)
    if not z then error(fn .. ": holidays are dates like 2026-12-25", 3) end
    holidays[z] = true
  end
  return {
    from = math.floor(from * HOUR + 0.5),
    to = math.floor(to * HOUR + 0.5),
    days = days,
    offset = offset * 60000,
    holidays = holidays,
  }
end

local function open_day(o, z)
  return o.days[(z + 3) % 7 + 1] and not o.holidays[z]
end

function M.is_working_time(t, opts)
  local o = hours_opts(opts, "dates.is_working_time")
  local lt = time_arg(t, "dates.is_working_time") + o.offset
  local z = lt // DAY
  local in_day = lt - z * DAY
  return open_day(o, z) and in_day >= o.from and in_day < o.to or false
end

function M.add_working_hours(t, hours, opts)
  local fn = "dates.add_working_hours"
  local o = hours_opts(opts, fn)
  local lt = time_arg(t, fn) + o.offset
  if type(hours) ~= "number" or not (hours >= 0 and hours <= MAX_HOURS) then
    error(fn .. ": hours must be a number from 0 to " .. MAX_HOURS, 2)
  end
  local left = math.floor(hours * HOUR + 0.5)
  local z = lt // DAY
  -- at least one working day in any week, so this ends within
  -- MAX_HOURS / (hours per day) weeks, holidays aside
  for _ = 1, 400 * 366 do
    if open_day(o, z) then
      local open, close = z * DAY + o.from, z * DAY + o.to
      if lt < open then lt = open end
      if lt < close then
        if left <= close - lt then return lt + left - o.offset end
        left = left - (close - lt)
      end
    end
    z = z + 1
    lt = z * DAY
  end
  error(fn .. ": no working time found (check days and holidays)", 2)
end

return M
