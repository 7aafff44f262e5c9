-- expect: attempt to index a boolean value
-- the string metatable is protected: getmetatable gives false, not the table
getmetatable("").__index.rep = function() return "pwned" end
