-- expect: table.concat
local t = setmetatable({}, {__index = tostring})
return table.concat(t, "", 1, 1e12)
