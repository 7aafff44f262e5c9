-- Records when a deal last changed stage: stage_changed_at is set to the
-- time of the write whenever a deal is created with a stage or its stage
-- changes (an update that leaves the stage as it was keeps the old time).
--
-- Collection: deals; fields: stage (any type), stage_changed_at (add it to
-- the schema as a datetime before enabling this: a write of a field the
-- schema lacks fails validation). Reports can then find deals stuck in a
-- stage with a filter like {stage_changed_at = {lt = "2026-01-01T00:00:00Z"}}.
local fields = require("fields")
local dates = require("dates")

local COLLECTION = "deals"
local STAGE, STAMP = "stage", "stage_changed_at"

local function stamp(ev)
  if fields.changed(ev, STAGE) then ev.record[STAMP] = dates.iso(kith.time.now()) end
end

kith.on(COLLECTION .. ".before_create", {name = "stamp-on-create"}, stamp)
kith.on(COLLECTION .. ".before_update", {name = "stamp-on-update", fields = {STAGE}}, stamp)
