-- Gives a new ticket a due date in working hours from its priority: urgent
-- 4, high 8, normal 24, low 40 hours (Monday to Friday, 09:00 to 17:00 UTC),
-- unless the ticket already has one.
--
-- Collection: tickets; fields: priority (a string such as an enum of the
-- keys of HOURS below; another or no value counts as normal) and due_at (a
-- datetime, which the schema must have). Edit HOURS and WORKING_HOURS below
-- for your service levels, time zone (offset in minutes) and holidays; see
-- scripts/lib/dates.lua for the options.
local fields = require("fields")
local dates = require("dates")

local COLLECTION = "tickets"
local HOURS = {urgent = 4, high = 8, normal = 24, low = 40}
local WORKING_HOURS = {from = 9, to = 17, days = {1, 2, 3, 4, 5}, offset = 0, holidays = {}}

kith.on(COLLECTION .. ".before_create", {name = "due-at"}, function(ev)
  local rec = ev.record
  if not fields.blank(rec.due_at) then return end
  local hours = HOURS[rec.priority] or HOURS.normal
  rec.due_at = dates.iso(dates.add_working_hours(kith.time.now(), hours, WORKING_HOURS))
end)
