-- expect: pattern longer than
return string.find("x", string.rep("x?", 2000))
