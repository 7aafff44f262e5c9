-- expect: ok
-- Kith's own modules load in the sandbox, under the script's budgets.
local fields, dates = require("fields"), require("dates")
assert(fields.trim("  Ada ") == "Ada")
assert(fields.email(" Ada@Example.COM") == "ada@example.com")
assert(dates.iso(0) == "1970-01-01T00:00:00.000Z")
local n = 0
for k, v in pairs(fields) do
  assert(type(v) == "function", k)
  n = n + 1
end
assert(n >= 8, "pairs lists a module's functions")
-- the script's own globals stay its own
helper = fields.squish
assert(helper(" a  b ") == "a b")
