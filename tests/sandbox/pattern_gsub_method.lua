-- expect: pattern too costly
local s = ("a"):rep(50000)
return s:gsub("(.-)(.-)(.-)b", "")
