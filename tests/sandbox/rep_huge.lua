-- expect: string.rep
return string.rep("x", 1e12)
