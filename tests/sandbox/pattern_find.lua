-- expect: pattern too costly
return string.find(string.rep("a", 100000), ".-.-.-.-.-.-.-b")
