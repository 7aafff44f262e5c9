-- expect: string.rep
return string.rep("", 1e12)
