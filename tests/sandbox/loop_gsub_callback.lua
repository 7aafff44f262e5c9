-- expect: time budget
string.gsub("abc", "%w", function() while true do end end)
