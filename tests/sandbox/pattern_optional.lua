-- expect: pattern too costly
-- optional items backtrack: "a?" repeated n times then "a" n times is 2^n
return string.find(string.rep("a", 40), string.rep("a?", 40) .. string.rep("a", 40))
