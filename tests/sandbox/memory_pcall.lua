-- expect: budget
-- pcall may catch "not enough memory", but the loop still ends: the memory
-- stays used and the time budget ends the call
local t = {}
while true do pcall(function() t[#t + 1] = ("x"):rep(1000000) .. #t end) end
