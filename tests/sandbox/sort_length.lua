-- expect: table.sort
local t = setmetatable({}, {__len = function() return 1e9 end, __index = tostring})
table.sort(t)
