-- expect: __gc is not allowed
-- a __gc entry of any value (false too) marks the table for finalization
local mt = {__gc = false}
setmetatable({}, mt)
