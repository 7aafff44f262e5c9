-- expect: pattern too costly
for x in string.gmatch(string.rep("a", 30000), "a*a*a*a*b") do end
