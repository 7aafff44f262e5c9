-- expect: global 'os'
-- a script may replace its own _ENV, which reaches nothing new
local _ENV = setmetatable({}, {__index = _ENV})
return os.time()
