-- expect: read-only table
string.rep = function() return "" end
