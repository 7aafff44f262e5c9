-- expect: __gc is not allowed
-- finalizers run with hooks off: a looping one would never be stopped
setmetatable({}, {__gc = function() while true do end end})
