-- expect: __gc is not allowed
-- a placeholder __gc would mark the table for finalization
local mt = {__gc = false}
setmetatable({}, mt)
