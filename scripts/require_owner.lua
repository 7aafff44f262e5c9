-- Refuses a deal without an owner: creating one with no owner, or an update
-- that clears it, is vetoed (HTTP 422, "a deal needs an owner").
--
-- Collection: deals; field: owner (any type: blank means missing, an empty
-- string or spaces included). Edit COLLECTION and FIELD below to guard
-- another collection or field.
local fields = require("fields")

local COLLECTION = "deals"
local FIELD = "owner"
local MESSAGE = "a deal needs an owner"

local function check(ev)
  if fields.blank(ev.record[FIELD]) then return false, MESSAGE end
end

kith.on(COLLECTION .. ".before_create", {name = "owner-on-create"}, check)
kith.on(COLLECTION .. ".before_update", {name = "owner-on-update", fields = {FIELD}}, check)
