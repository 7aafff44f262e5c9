-- expect: table.move
local t = setmetatable({}, {__index = tostring})
table.move(t, 1, 1e12, 1, {})
