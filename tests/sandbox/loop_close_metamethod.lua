-- expect: time budget
-- a to-be-closed variable whose __close loops, run while the deadline unwinds
local x <close> = setmetatable({}, {__close = function() while true do end end})
while true do end
