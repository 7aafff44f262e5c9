-- expect: time budget
local co = coroutine.wrap(function() while true do end end)
co()
