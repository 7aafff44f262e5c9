-- expect: pattern too costly
return string.match(string.rep("ab", 50000), "(.+)%1%1%1c")
