-- expect: protected metatable
setmetatable(string, {})
