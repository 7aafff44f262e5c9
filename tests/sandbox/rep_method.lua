-- expect: string.rep
return ("xy"):rep(1e9, ",")
