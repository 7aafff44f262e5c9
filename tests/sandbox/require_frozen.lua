-- expect: attempt to modify a read-only table
-- A module's value is shared by every script of the state: read-only at any
-- depth, so one script cannot change what another sees.
local fields = require("fields")
assert(require("fields") == fields, "one value per state")
assert(getmetatable(fields) == false)
assert(not pcall(setmetatable, fields, {}))
assert(not pcall(function() fields.blank = function() return true end end))
assert(fields.blank("  "), "unchanged")
fields.trim = nil
